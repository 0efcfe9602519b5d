"""grade.py: exit codes and the results JSON contract."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import grade
from grader import sandbox, spec

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"


# An exercise that reads data (a folder and one named file), written to tmp_path: the data options'
# errors without importing TensorFlow (the bundled exercises with data are Keras ones).
DATA_SPEC = """
[data]
folder = "datasets"

[data.files.labels]
standin = "labels.csv"
place = ["labels.csv"]

[[items]]
name = "f"
points = 1
"""


@pytest.fixture
def reads_data(tmp_path: Path) -> str:
    root = tmp_path / "reads_data"
    root.mkdir()
    (root / "spec.toml").write_text(DATA_SPEC)
    (root / "checks.py").write_text("from grader.checks import Check\n"
                                    "CHECKS = {'f': [Check('works', run=lambda s, c: None)]}\n")
    return str(root)


@pytest.fixture
def bwrap(monkeypatch):
    """bwrap(True/False): whether bubblewrap counts as installed (nothing is started by these tests)."""
    real_which = shutil.which

    def installed(present: bool) -> None:
        monkeypatch.setattr(sandbox.shutil, "which", lambda name, *a, **k: (f"/usr/bin/{name}" if present else None)
                            if name == "bwrap" else real_which(name, *a, **k))
    return installed


def usage_error(argv: list[str], capfd, tmp_path: Path) -> str:
    """grade.py's exit status must be 2; returns the error line it printed (argparse's on stderr,
    the grader's own "error: ..." on stdout)."""
    try:
        code = grade.main([*argv, "--gradebook", str(tmp_path / "g.sqlite")] if argv else [])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capfd.readouterr()
    assert code == 2, (out, err)
    lines = [line for line in (out + err).splitlines() if "error:" in line]
    assert len(lines) == 1, out + err
    return lines[0]


CORRECT = str(SAMPLES / "correct.ipynb")


@pytest.mark.parametrize("argv, message", [
    ([], "grade.py: error: the following arguments are required: --exercise, submissions"),
    (["--exercise", "no_such_exercise", CORRECT], "error: no exercise 'no_such_exercise' (looked for "),
    (["--exercise", "conv_step_by_step", "missing.ipynb"], "error: no such file: missing.ipynb"),
    (["--exercise", "conv_step_by_step", "--sandbox", "docker", CORRECT],
     "grade.py: error: argument --sandbox: invalid choice: 'docker'"),
    (["--exercise", "conv_step_by_step", "--device", "tpu", CORRECT],
     "grade.py: error: argument --device: invalid choice: 'tpu'"),
    (["--exercise", "{data}", "--data", "/nonexistent/signs", CORRECT], "error: --data /nonexistent/signs: not a folder"),
    (["--exercise", "conv_step_by_step", "--weights", "/etc/hostname", CORRECT],
     "error: conv_step_by_step reads no data (--data, --data-file, --weights)"),
    (["--exercise", "{data}", "--data-file", "no-equals-sign", CORRECT],
     "error: --data-file 'no-equals-sign': expected NAME=PATH"),
    (["--exercise", "{data}", "--weights", "/etc/hostname", CORRECT],
     "error: reads_data reads no data file 'weights' (its files: labels)"),
    (["--exercise", "{data}", "--data-file", "labels=/nonexistent.csv", CORRECT],
     "error: --data-file labels=/nonexistent.csv: not a file"),
    (["--exercise", "conv_step_by_step", "--cell-timeout", "0", CORRECT], "error: --cell-timeout 0.0: must be a number > 0"),
    (["--exercise", "conv_step_by_step", "--shard", "3/2", CORRECT], "error: shard 3/2: need 1 <= K <= N"),
    (["--exercise", "conv_step_by_step", "--exercises", "/nonexistent", CORRECT],
     "error: --exercises /nonexistent: not a folder"),
])
def test_usage_errors_exit_2_naming_the_option(argv, message, capfd, tmp_path, reads_data, bwrap):
    """Each refused for its own reason, which the message names, whether or not bubblewrap is
    installed here (it counts as installed: it is not what these lines are about)."""
    bwrap(True)
    line = usage_error([reads_data if a == "{data}" else a for a in argv], capfd, tmp_path)
    assert message in line, line


def test_without_bubblewrap_the_message_is_about_bubblewrap_not_the_option(capfd, tmp_path, reads_data, bwrap):
    """Why the old "exit 2" cases could pass for the wrong reason: without bwrap the data option is
    never looked at. With --sandbox none the option's own message comes back."""
    bwrap(False)
    argv = ["--exercise", reads_data, "--data", "/nonexistent/signs", CORRECT]
    line = usage_error(argv, capfd, tmp_path)
    assert "--sandbox bwrap needs bubblewrap, which is not installed (apt-get install bubblewrap)" in line
    assert "/nonexistent/signs" not in line
    assert "--data /nonexistent/signs: not a folder" in usage_error([*argv, "--sandbox", "none"], capfd, tmp_path)


def test_ungradable_files_still_get_a_result_and_exit_0(tmp_path):
    out = tmp_path / "results.json"
    code = grade.main(["--exercise", "conv_step_by_step", str(SAMPLES / "not_a_notebook.ipynb"),
                       str(SAMPLES / "truncated.ipynb"), "--json", str(out), "--quiet",
                       "--gradebook", str(tmp_path / "g.sqlite")])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["exercise"] == "conv_step_by_step"
    assert [s["status"] for s in doc["submissions"]] == ["ungradable", "ungradable"]
    for s in doc["submissions"]:
        assert s["score"] == 0 and s["max_score"] == 70 and s["error"] and s["tests"] == []


def test_sandbox_none_warns_loudly_what_is_not_protected(capsys, tmp_path):
    code = grade.main(["--exercise", "conv_step_by_step", "--sandbox", "none", "--quiet",
                       "--gradebook", str(tmp_path / "g.sqlite"), str(SAMPLES / "not_a_notebook.ipynb")])
    out = capsys.readouterr().out
    assert code == 0
    assert "WARNING" in out and "runs as you, with your files, your network" in out


@pytest.mark.slow
def test_results_json_follows_the_contract(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "grade.py", "--exercise", "conv_step_by_step",
                           str(SAMPLES / "correct.ipynb"), str(SAMPLES / "stride_off_by_one.ipynb"),
                           "--json", str(out), "--gradebook", str(tmp_path / "g.sqlite")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "conv_forward" in proc.stdout and "70/70" in proc.stdout
    doc = json.loads(out.read_text())
    assert set(doc) == {"schema_version", "exercise", "submissions"} and doc["schema_version"] == 2
    correct, wrong = doc["submissions"]
    assert correct["status"] == "graded" and correct["score"] == correct["max_score"] == 70
    assert correct["error"] is None
    for sub in (correct, wrong):
        assert {"submission", "status", "score", "max_score", "error", "tests"} <= set(sub)
        assert sub["score"] == pytest.approx(sum(t["score"] for t in sub["tests"]))
        assert sum(t["max_score"] for t in sub["tests"]) == pytest.approx(70)
        for t in sub["tests"]:
            assert set(t) == {"name", "item", "score", "max_score", "status", "output"}
            assert t["status"] in ("passed", "failed", "error", "skipped")
            assert t["item"] == t["name"].split(":")[0]
            assert t["item"] in {i.name for i in spec.load_exercise("conv_step_by_step").items}
    failed = [t for t in wrong["tests"] if t["status"] == "failed"]
    assert {t["name"].split(":")[0] for t in failed} == {"conv_forward"}
    assert all("expected" in t["output"] and "on input" in t["output"] for t in failed)


@pytest.mark.slow
def test_library_noise_goes_to_a_log_named_at_the_end(tmp_path):
    """Loading a Keras exercise imports TensorFlow, whose start-up lines (absl's, CUDA probing on a
    CPU-only machine) are not the grader's: they go to a log file the last line names."""
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not a notebook")
    out = subprocess.run([sys.executable, "grade.py", "--exercise", "resnet50", "--device", "cpu", str(bad),
                          "--gradebook", str(tmp_path / "g.sqlite")],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
                         timeout=300)
    assert "absl" not in out.stderr and "E0000" not in out.stderr and "I0000" not in out.stderr, out.stderr
    assert "absl" not in out.stdout and "ungradable" in out.stdout
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("Messages of the libraries"), out.stdout
    log = Path(last.split(": ", 1)[1])
    assert log.parent == tmp_path and "absl" in log.read_text()
