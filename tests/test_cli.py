"""grade.py: exit codes and the results JSON contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import grade
from grader import spec

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"


@pytest.mark.parametrize("argv", [
    [],                                                         # nothing to grade
    ["--exercise", "no_such_exercise", str(SAMPLES / "correct.ipynb")],
    ["--exercise", "conv_step_by_step", "missing.ipynb"],
    ["--exercise", "conv_step_by_step", "--sandbox", "docker", str(SAMPLES / "correct.ipynb")],
    ["--exercise", "resnet50", "--data", "/nonexistent/signs", str(SAMPLES / "truncated.ipynb")],
    ["--exercise", "conv_step_by_step", "--weights", "/etc/hostname", str(SAMPLES / "correct.ipynb")],  # no data
    ["--exercise", "resnet50", "--data-file", "no-equals-sign", str(SAMPLES / "correct.ipynb")],
    ["--exercise", "resnet50", "--weights", "/etc/hostname", str(SAMPLES / "correct.ipynb")],  # reads no weights
    ["--exercise", "mobilenet_transfer", "--weights", "/nonexistent.h5", str(SAMPLES / "correct.ipynb")],
])
def test_usage_errors_exit_2(argv, capsys, tmp_path):
    try:
        code = grade.main(argv + (["--gradebook", str(tmp_path / "g.sqlite")] if argv else []))
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2


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
    assert set(doc) == {"exercise", "submissions"}
    correct, wrong = doc["submissions"]
    assert correct["status"] == "graded" and correct["score"] == correct["max_score"] == 70
    assert correct["error"] is None
    for sub in (correct, wrong):
        assert {"submission", "status", "score", "max_score", "error", "tests"} <= set(sub)
        assert sub["score"] == pytest.approx(sum(t["score"] for t in sub["tests"]))
        assert sum(t["max_score"] for t in sub["tests"]) == pytest.approx(70)
        for t in sub["tests"]:
            assert set(t) == {"name", "score", "max_score", "status", "output"}
            assert t["status"] in ("passed", "failed")
            assert t["name"].split(":")[0] in {i.name for i in spec.load_exercise("conv_step_by_step").items}
    failed = [t for t in wrong["tests"] if t["status"] == "failed"]
    assert {t["name"].split(":")[0] for t in failed} == {"conv_forward"}
    assert all("expected" in t["output"] and "on input" in t["output"] for t in failed)


def test_library_noise_goes_to_a_log_named_at_the_end(tmp_path):
    """Loading a Keras exercise imports TensorFlow, whose start-up lines (absl's, CUDA probing on a
    CPU-only machine) are not the grader's: they go to a log file the last line names."""
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not a notebook")
    out = subprocess.run([sys.executable, "grade.py", "--exercise", "resnet50", "--device", "cpu", str(bad)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)},
                         timeout=300)
    assert "absl" not in out.stderr and "E0000" not in out.stderr and "I0000" not in out.stderr, out.stderr
    assert "absl" not in out.stdout and "ungradable" in out.stdout
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("Messages of the libraries"), out.stdout
    log = Path(last.split(": ", 1)[1])
    assert log.parent == tmp_path and "absl" in log.read_text()
