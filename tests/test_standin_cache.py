"""Stand-ins are made once, even when several processes ask for them at the same moment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

MAKER = '''
import argparse, os, pathlib, time
import sys
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
with open(os.environ["MAKER_LOG"], "a") as log:
    log.write("made\\n")
time.sleep(1.0)   # long enough for the others to arrive while it works
(out / "data").mkdir(parents=True, exist_ok=True)
(out / "data" / "x.txt").write_text("stand-in")
'''

ASK = textwrap.dedent('''
    import sys
    from pathlib import Path
    from grader.spec import DataSpec
    folder, files = DataSpec(Path(sys.argv[1]), "data", "make.py").resolve()
    print((folder / "x.txt").read_text())
''')


def test_processes_asking_together_make_the_standins_once(tmp_path: Path) -> None:
    exercise = tmp_path / "exercise"
    exercise.mkdir()
    (exercise / "make.py").write_text(MAKER)
    log = tmp_path / "made.log"
    env = {"PATH": "/usr/bin:/bin", "CONVGRADE_CACHE": str(tmp_path / "cache"), "MAKER_LOG": str(log)}
    root = Path(__file__).resolve().parent.parent
    procs = [subprocess.Popen([sys.executable, "-c", ASK, str(exercise)], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert [o.strip() for o, _ in outs] == ["stand-in"] * 3
    assert log.read_text() == "made\n"


READS_MAKER = '''
import os, pathlib, sys
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
(out / "data").mkdir(parents=True, exist_ok=True)
shipped = pathlib.Path(__file__).parent / "base.bin"
(out / "data" / "x.txt").write_text(shipped.read_text() if shipped.exists() else "made without it")
'''


def test_a_changed_file_the_maker_reads_makes_the_standins_anew(tmp_path: Path, monkeypatch) -> None:
    """make_reads (e.g. shipped pretrained weights) is part of the stand-ins' cache name: a new
    version of the file is not hidden behind stand-ins made from the old one."""
    from grader import spec

    exercise = tmp_path / "exercise"
    exercise.mkdir()
    (exercise / "make.py").write_text(READS_MAKER)
    monkeypatch.setattr(spec, "DATA_CACHE", tmp_path / "cache")
    data = spec.DataSpec(exercise, "data", "make.py", make_reads=("base.bin",))
    (exercise / "base.bin").write_text("first")
    first, _ = data.resolve()
    assert (first / "x.txt").read_text() == "first"
    (exercise / "base.bin").write_text("second")
    second, _ = data.resolve()
    assert second != first and (second / "x.txt").read_text() == "second"
    (exercise / "base.bin").unlink()  # an install without it: the script's own fallback, in a folder of its own
    third, _ = data.resolve()
    assert third not in (first, second) and (third / "x.txt").read_text() == "made without it"
