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
