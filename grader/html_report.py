"""Feedback files for students (Markdown or HTML) and a class report for instructors (HTML).

Everything a submission produced (test outputs, errors, notebook problems, even its file and
student name) is untrusted text: it is escaped everywhere and test outputs are shown verbatim
in monospace, because they hold the minimal counterexample (inputs, expected vs got) and must
read exactly as the grader wrote them. The class report is one self-contained file (charts
embedded as PNG data: URIs, inline CSS, no script) so it can be mailed or archived as is.
"""

from __future__ import annotations

import base64
import html
import io
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from .exports import ExportError, output_name, unique_name
from .results import SubmissionResult
from .spec import Exercise
from .text import format_score, student_of

Format = Literal["md", "html"]

_SLOWEST = 10
# Labels that set what a submission produced apart from the grader's own words: a student's
# exception named "All tests passed" or a printed "Score: 70/70" is shown under these, quoted.
ERROR_LABEL = "Why (this may quote your notebook):"
GRADED_AS = "graded as:"   # the published version of the assignment the submission was graded as
OUTPUT_LABEL = "What the check found (values from your code are quoted as they came back):"
NOTEBOOK_LABEL = "Your notebook raised or printed:"
# The feedback's sections of tests that did not pass, by status: (status, heading, label).
TEST_SECTIONS = (("failed", "Failed tests", OUTPUT_LABEL),
                 ("error", "Checks that could not be run",
                  "The check itself could not run (0 points; the other checks ran). Why (this may quote your code):"),
                 ("skipped", "Checks not run", "Not checked (0 points), because a check it needs did not pass:"))


# -- small shared helpers ----------------------------------------------------------------------
def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.0f}%" if whole else "-"


def item_rows(exercise: Exercise, result: SubmissionResult) -> list[tuple[str, float, float]]:
    """(item, score, max) in the exercise's order; items a result lacks count as 0/points."""
    scores = result.item_scores()
    rows = [(item.name, *scores.get(item.name, (0.0, item.points))) for item in exercise.items]
    known = {item.name for item in exercise.items}
    rows += [(name, s, m) for name, (s, m) in scores.items() if name not in known]
    return rows


# -- Markdown ----------------------------------------------------------------------------------
_MD_PUNCT = re.compile(r"([\\`*_\[\]<>#!|&~$])")


def md_text(text: str) -> str:
    """Inline Markdown text that renders literally: the characters that could start emphasis,
    code, a link or image, an HTML tag or entity, a table cell break, strikethrough or math are
    backslash-escaped (CommonMark allows it for any ASCII punctuation); newlines become spaces.
    Only used mid-line (after "# " or "| "), so line-start syntax (lists, quotes) cannot occur."""
    return _MD_PUNCT.sub(r"\\\1", " ".join(text.split()))


def md_code_block(text: str, info: str = "text") -> str:
    """A fenced block that no backtick run inside `text` can close: the fence is longer."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{info}\n{body}{fence}"


def feedback_markdown(exercise: Exercise, result: SubmissionResult) -> str:
    """Per-student feedback as Markdown (for LMS comments, GitHub Classroom, plain reading)."""
    out = [f"# {md_text(exercise.title)}: feedback for {md_text(student_of(result))}", ""]
    out += [f"Submission: {md_text(Path(result.submission).name)}  ",
            f"**Score: {format_score(result.score)}/{format_score(result.max_score)}**", ""]
    if result.version:
        out += [f"{GRADED_AS} {md_text(result.version)}", ""]
    if result.status != "graded":
        out += ["## Not graded", "", "The submission could not be graded.", "", ERROR_LABEL, "",
                md_code_block(result.error or "unknown reason"), ""]
    else:
        out += ["| item | score |", "|---|---:|"]
        out += [f"| {md_text(name)} | {format_score(s)}/{format_score(m)} |"
                for name, s, m in item_rows(exercise, result)]
        out.append("")
    for status, heading, label in TEST_SECTIONS:
        shown = [t for t in result.tests if t.status == status]
        if shown:
            out += [f"## {heading}", ""]
            for t in shown:
                out += [f"### {md_text(t.name)} ({format_score(t.score)}/{format_score(t.max_score)})", "", label, "",
                        md_code_block(t.output or "(no output)"), ""]
    if result.notebook_errors:
        out += ["## Notebook problems", "", NOTEBOOK_LABEL, ""]
        for e in result.notebook_errors:
            out += [md_code_block(e), ""]
    if result.status == "graded" and all(t.status == "passed" for t in result.tests):
        out += ["All tests passed.", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# -- HTML --------------------------------------------------------------------------------------
def esc(text: object) -> str:
    """HTML-escape any value, quotes included (safe in text and attribute values)."""
    return html.escape(str(text), quote=True)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 62rem; padding: 0 1rem; color: #1f2328; background: #fff; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; } h3 { font-size: 1rem; }
.sub { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.full td.num { color: #1a7f37; } tr.zero td.num { color: #cf222e; } tr.part td.num { color: #9a6700; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .7rem;
      overflow-x: auto; white-space: pre; font: .85rem/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem 1rem; min-width: 8rem; }
.card .v { font-size: 1.5rem; font-weight: 600; } .card .k { color: #57606a; font-size: .85rem; }
.charts { display: flex; flex-direction: column; gap: 1rem; }
.charts figure { margin: 0; } .charts img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: .85rem; }
.bar { display: inline-block; height: .7rem; background: #2da44e; vertical-align: middle; }
.bar.bad { background: #cf222e; } .bar.mid { background: #bf8700; }
.score { font-size: 1.3rem; font-weight: 600; }
"""


def _page(title: str, body: Iterable[str]) -> str:
    """A complete standalone HTML5 document (inline CSS only, no script, no external URL)."""
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        *body, "</body>", "</html>", ""])


def _pre(text: str) -> str:
    return f"<pre><code>{esc(text)}</code></pre>"


def _row_class(score: float, max_score: float) -> str:
    return "full" if score >= max_score else "zero" if score <= 0 else "part"


def feedback_html(exercise: Exercise, result: SubmissionResult) -> str:
    """Per-student feedback as a standalone HTML page."""
    who = student_of(result)
    body = [f"<h1>{esc(exercise.title)}: feedback for {esc(who)}</h1>",
            f'<p class="sub">Submission: {esc(Path(result.submission).name)}</p>',
            f'<p class="score">Score: {esc(format_score(result.score))}/{esc(format_score(result.max_score))}</p>']
    if result.version:
        body.append(f'<p class="sub">{esc(GRADED_AS)} {esc(result.version)}</p>')
    if result.status != "graded":
        body += ["<h2>Not graded</h2>", "<p>The submission could not be graded.</p>",
                 f"<p>{esc(ERROR_LABEL)}</p>", _pre(result.error or "unknown reason")]
    else:
        body += ['<table class="items">', '<tr><th>item</th><th class="num">score</th></tr>']
        body += [f'<tr class="{_row_class(s, m)}"><td>{esc(name)}</td>'
                 f'<td class="num">{esc(format_score(s))}/{esc(format_score(m))}</td></tr>'
                 for name, s, m in item_rows(exercise, result)]
        body.append("</table>")
    for status, heading, label in TEST_SECTIONS:
        shown = [t for t in result.tests if t.status == status]
        if shown:
            body.append(f"<h2>{esc(heading)}</h2>")
            for t in shown:
                body += [f"<h3>{esc(t.name)} ({esc(format_score(t.score))}/{esc(format_score(t.max_score))})</h3>",
                         f"<p>{esc(label)}</p>", _pre(t.output or "(no output)")]
    if result.notebook_errors:
        body += ["<h2>Notebook problems</h2>", f"<p>{esc(NOTEBOOK_LABEL)}</p>"]
        body += [_pre(e) for e in result.notebook_errors]
    if result.status == "graded" and all(t.status == "passed" for t in result.tests):
        body.append("<p>All tests passed.</p>")
    return _page(f"{exercise.title}: feedback for {who}", body)


# -- feedback files ----------------------------------------------------------------------------
def feedback_file_names(results: Sequence[SubmissionResult], fmt: Format) -> list[str]:
    """One file name per result, in order: exports.output_name (text.file_name of the id), the
    rule every export uses; distinct for distinct ids, even on case-insensitive disks."""
    taken: set[str] = set()
    return [f"{unique_name(output_name(r), taken)}.{fmt}" for r in results]


def write_feedback(folder: Path, exercise: Exercise, results: Sequence[SubmissionResult],
                   fmt: Format = "md") -> list[Path]:
    """Write one feedback file per submission into `folder`; returns the paths, in order."""
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown feedback format {fmt!r} (md or html)")
    render = feedback_markdown if fmt == "md" else feedback_html
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    paths, failures = [], []
    for r, name in zip(results, feedback_file_names(results, fmt)):
        path = root / name
        try:
            if path.parent != root or path.is_symlink():  # cannot happen with file_name; a guard
                raise ValueError(f"feedback file {name!r} would leave {root}")
            path.write_text(render(exercise, r), encoding="utf-8", errors="replace")
        except Exception as exc:  # noqa: BLE001 (one submission's file never stops the others)
            failures.append(f"{student_of(r)!r}: {exc}")
            continue
        paths.append(path)
    if failures:
        raise ExportError(f"feedback in {folder}", failures)
    return paths


# -- class statistics --------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckRate:
    name: str
    passed: int
    total: int

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0


@dataclass(frozen=True)
class ClassStats:
    submissions: int
    graded: int
    ungradable: int
    mean: float | None
    median: float | None
    max_score: float


def class_stats(exercise: Exercise, results: Sequence[SubmissionResult]) -> ClassStats:
    """Counts, and mean/median score over graded submissions (ungradable ones have no score)."""
    scores = [r.score for r in results if r.status == "graded"]
    return ClassStats(
        submissions=len(results), graded=len(scores), ungradable=len(results) - len(scores),
        mean=statistics.fmean(scores) if scores else None,
        median=statistics.median(scores) if scores else None,
        max_score=exercise.max_score)


def check_pass_rates(exercise: Exercise, results: Sequence[SubmissionResult]) -> list[CheckRate]:
    """Per test name, passes over the graded submissions that ran it; exercise item order."""
    counts: dict[str, list[int]] = {}
    for r in results:
        if r.status != "graded":
            continue
        for t in r.tests:
            c = counts.setdefault(t.name, [0, 0])
            c[0] += t.status == "passed"
            c[1] += 1
    order = {item.name: i for i, item in enumerate(exercise.items)}
    first_seen = {name: i for i, name in enumerate(counts)}
    ranked = sorted(counts, key=lambda n: (order.get(n.split(":", 1)[0], len(order)), first_seen[n]))
    return [CheckRate(n, counts[n][0], counts[n][1]) for n in ranked]


def slowest(results: Sequence[SubmissionResult], n: int = _SLOWEST) -> list[SubmissionResult]:
    return sorted(results, key=lambda r: r.duration_s, reverse=True)[:n]


# -- charts ------------------------------------------------------------------------------------
def _png_data_uri(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def score_histogram_png(scores: Sequence[float], max_score: float) -> str:
    """Distribution of the graded scores over 0..max, as a PNG data: URI."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9.6, 3.0))
    ax = fig.add_subplot()
    top = max_score if max_score > 0 else max(scores, default=1.0) or 1.0
    bins = [top * i / 10 for i in range(11)]
    ax.hist(list(scores), bins=bins, color="#2f81f7", edgecolor="white")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"score (out of {format_score(top)})")
    ax.set_ylabel("submissions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Score distribution (graded submissions)")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png_data_uri(fig)


def pass_rate_png(rates: Sequence[CheckRate]) -> str:
    """Horizontal bars, one per check, % of graded submissions passing, as a PNG data: URI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.6, max(2.4, 0.9 + 0.26 * len(rates))))
    ax = fig.add_subplot()
    labels = [r.name for r in rates]
    values = [100.0 * r.rate for r in rates]
    colours = ["#2da44e" if v >= 80 else "#bf8700" if v >= 50 else "#cf222e" for v in values]
    ax.barh(range(len(rates)), values, color=colours)
    ax.set_yticks(range(len(rates)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of graded submissions passing")
    ax.set_title("Pass rate per check")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png_data_uri(fig)


# -- class report ------------------------------------------------------------------------------
def _card(value: str, key: str) -> str:
    return f'<div class="card"><div class="v">{esc(value)}</div><div class="k">{esc(key)}</div></div>'


def _stat(x: float | None) -> str:
    return "-" if x is None else format_score(x)


def _rate_bar(rate: float) -> str:
    kind = "" if rate >= 0.8 else " mid" if rate >= 0.5 else " bad"
    return f'<span class="bar{kind}" style="width:{round(100 * rate)}px"></span>'


def class_report(exercise: Exercise, results: Sequence[SubmissionResult],
                 generated: datetime | None = None, settings: str | None = None) -> str:
    """The instructor's overview of one batch, as one self-contained HTML page; `settings`: the
    line saying what it was graded with (settings.RunSettings.describe), under the title."""
    when = (generated or datetime.now()).strftime("%Y-%m-%d %H:%M")
    stats = class_stats(exercise, results)
    rates = check_pass_rates(exercise, results)
    scores = [r.score for r in results if r.status == "graded"]
    hist_alt = (f"Histogram of the scores of {stats.graded} graded submissions out of "
                f"{format_score(stats.max_score)}; mean {_stat(stats.mean)}, median {_stat(stats.median)}")
    rate_alt = "Bar chart of the pass rate per check: " + "; ".join(
        f"{r.name} {_pct(r.passed, r.total)}" for r in rates)
    title = f"{exercise.title}: class report"
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="sub">Exercise {esc(exercise.name)}, generated {esc(when)}</p>',
            *([f'<p class="sub" id="settings">{esc(settings)}</p>'] if settings else []),
            '<div class="cards">',
            _card(str(stats.submissions), "submissions"), _card(str(stats.graded), "graded"),
            _card(str(stats.ungradable), "ungradable"),
            _card(f"{_stat(stats.mean)}/{format_score(stats.max_score)}", "mean score (graded)"),
            _card(f"{_stat(stats.median)}/{format_score(stats.max_score)}", "median score (graded)"),
            "</div>",
            '<div class="charts">',
            f'<figure><img id="score-histogram" src="{score_histogram_png(scores, stats.max_score)}" '
            f'alt="{esc(hist_alt)}"><figcaption>Scores of graded submissions</figcaption></figure>',
            f'<figure><img id="pass-rate-chart" src="{pass_rate_png(rates)}" alt="{esc(rate_alt)}">'
            "<figcaption>Pass rate per check</figcaption></figure>",
            "</div>",
            "<h2>Pass rate per check</h2>"]
    if rates:
        body += ['<table id="pass-rates">',
                 '<tr><th>check</th><th class="num">passed/total</th><th class="num">%</th><th></th></tr>']
        body += [f'<tr><td>{esc(r.name)}</td><td class="num">{r.passed}/{r.total}</td>'
                 f'<td class="num">{esc(_pct(r.passed, r.total))}</td><td>{_rate_bar(r.rate)}</td></tr>'
                 for r in rates]
        body.append("</table>")
    else:
        body.append("<p>No graded submission.</p>")
    body += [f"<h2>Slowest submissions (top {_SLOWEST})</h2>", '<table id="slowest">',
             '<tr><th>student</th><th>submission</th><th>status</th>'
             '<th class="num">score</th><th class="num">duration</th></tr>']
    body += [f"<tr><td>{esc(student_of(r))}</td><td>{esc(Path(r.submission).name)}</td>"
             f'<td>{esc(r.status)}</td>'
             f'<td class="num">{esc(format_score(r.score))}/{esc(format_score(r.max_score))}</td>'
             f'<td class="num">{r.duration_s:.1f} s</td></tr>' for r in slowest(results)]
    body.append("</table>")
    ungradable = [r for r in results if r.status != "graded"]
    body.append(f"<h2>Ungradable submissions ({len(ungradable)})</h2>")
    if ungradable:
        body += ['<table id="ungradable">', "<tr><th>student</th><th>submission</th><th>error</th></tr>"]
        body += [f"<tr><td>{esc(student_of(r))}</td><td>{esc(Path(r.submission).name)}</td>"
                 f"<td>{_pre(r.error or 'unknown reason')}</td></tr>" for r in ungradable]
        body.append("</table>")
    else:
        body.append("<p>None.</p>")
    return _page(f"{title} ({when})", body)


def write_class_report(path: Path, exercise: Exercise, results: Sequence[SubmissionResult],
                       generated: datetime | None = None, settings: str | None = None) -> Path:
    """Write class_report() to `path` (parents created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(class_report(exercise, results, generated, settings), encoding="utf-8", errors="replace")
    return path
