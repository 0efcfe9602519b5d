"""`make test` as CI runs it, on a clean clone: wall time, and the CPU time the whole machine spent.

    .venv/bin/python bench/make_test_cpu.py [--commit HEAD] [--junit FILE]

Clones this checkout at --commit into a temporary folder, runs `CI=true bash .ci/run` there (set-up
included) and reports its wall time and the machine's busy and idle CPU seconds over the run, read
from /proc/stat (every process counts: the sandboxes' kernels and model workers too). Busy seconds
over the cores bound the wall time from below: no schedule of the same work on N cores finishes
sooner than busy / N. Run it on an otherwise idle machine: anything else running is counted too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)   # user nice system irq softirq steal
IDLE_FIELDS = (3, 4)               # idle iowait


def cpu_seconds(stat: str) -> tuple[float, float]:
    """(busy, idle) seconds of all cores from the text of /proc/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            return (sum(values[i] for i in BUSY_FIELDS) / ticks, sum(values[i] for i in IDLE_FIELDS) / ticks)
    raise ValueError("no 'cpu' line in /proc/stat")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--commit", default="HEAD")
    p.add_argument("--junit", help="also write pytest's JUnit XML here (for bench/test_groups.py)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="convgrade-clone-") as tmp:
        os.chmod(tmp, 0o755)   # as a checkout is: the tests that grade as nobody need to read it
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", args.commit], check=True)
        commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        env = {**os.environ, "CI": "true"}
        if args.junit:
            env["PYTEST_ADDOPTS"] = f"--junitxml={Path(args.junit).resolve()}"
        busy0, idle0 = cpu_seconds(Path("/proc/stat").read_text())
        started = time.monotonic()
        log = Path(tmp) / "run.log"
        with log.open("w") as out:
            code = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
        wall = time.monotonic() - started
        busy1, idle1 = cpu_seconds(Path("/proc/stat").read_text())
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
    cores = os.cpu_count() or 1
    busy = busy1 - busy0
    print(f"commit {commit}: exit {code}, wall {wall // 60:.0f} min {wall % 60:.0f} s; CPU busy {busy:.0f} s, "
          f"idle {idle1 - idle0:.0f} s on {cores} cores; floor busy/{cores} = {busy / cores // 60:.0f} min "
          f"{busy / cores % 60:.0f} s")
    print(*tail)


if __name__ == "__main__":
    main()
