"""A sandboxed kernel of conv_step_by_step, started anew vs forked from the fork server.

    .venv/bin/python bench/kernel_start.py --repeats 5 --write

Each kernel gets its own scratch and bwrap sandbox (grader.sandbox.Sandbox, the exercise's
environment and prelude), as in grading. Measured per kernel: the wall time of the start (bwrap,
the kernel ready, the grader's prelude run), the kernel's own CPU seconds then (getrusage in the
kernel: a forked kernel counts from its fork), and both again after the notebook's first cell,
`import numpy, matplotlib.pyplot`. Best of --repeats. The fork server's own start (its imports,
once per grading process) is measured once, on its own. As root only (forked kernels are).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import nbformat

from common import ROOT, write_section  # noqa: F401  (ROOT: the project on sys.path)
from grader.grading import fork_server_for
from grader.kernel import KernelSession
from grader.sandbox import SUBMISSION_NAME, Sandbox
from grader.settings import build_settings
from grader.spec import Limits, load_exercise

CPU = "import resource as _r, json as _j; _u = _r.getrusage(_r.RUSAGE_SELF); print(_j.dumps(_u.ru_utime + _u.ru_stime))"


def one_kernel(exercise, forks, root: Path, name: str) -> tuple[float, float, float, float]:
    """(start wall, kernel CPU at ready, first cell wall, its CPU) of one sandboxed kernel."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CPU),
                                         nbformat.v4.new_code_cell("import numpy, matplotlib.pyplot\n" + CPU)])
    scratch = root / name
    for sub in ("work", "home", "exchange"):
        (scratch / sub).mkdir(parents=True)
    (scratch / "work" / SUBMISSION_NAME).write_text(nbformat.writes(nb))
    limits = Limits()
    box = Sandbox("bwrap", scratch, limits, exercise.kernel_env, forks=forks)
    try:
        started = time.perf_counter()
        with KernelSession(nb, box, limits, exercise.prelude) as kernel:
            ready = time.perf_counter()
            runner = kernel.runner
            runner._client.execute_cell(nb.cells[0], 0)
            boot = _printed(nb.cells[0])
            before = time.perf_counter()
            runner._client.execute_cell(nb.cells[1], 1)
            imports_wall = time.perf_counter() - before
            after = _printed(nb.cells[1])
    finally:
        box.close()
    return ready - started, boot, imports_wall, after - boot


def _printed(cell) -> float:
    """The number the cell printed last on stdout."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
    return float(json.loads(text.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    args = p.parse_args()
    exercise = load_exercise("conv_step_by_step")
    forks = fork_server_for(exercise, build_settings(exercise))
    if forks is None:
        raise SystemExit("no fork server here (root, bwrap and the font list are needed)")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cg-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        forks.prestart()
        forks._await_ready()
        zygote_wall = time.perf_counter() - started
        zygote_cpu = _cpu(forks._process.pid)
        try:
            for label, server in (("started anew", None), ("forked", forks)):
                runs = [one_kernel(exercise, server, root, f"{label[:3]}{i}") for i in range(args.repeats)]
                rows[label] = [min(r[i] for r in runs) for i in range(4)]
        finally:
            forks.close()
    new, forked = rows["started anew"], rows["forked"]
    body = f"""
| one sandboxed conv_step_by_step kernel (best of {args.repeats}) | start, wall | kernel's CPU at ready | first cell (`import numpy, matplotlib.pyplot`), wall | its CPU | kernel's CPU in all |
|---|---|---|---|---|---|
| started anew (bwrap runs ipykernel) | {new[0]:.2f} s | {new[1]:.2f} s | {new[2]:.2f} s | {new[3]:.2f} s | {new[1] + new[3]:.2f} s |
| forked from the fork server | {forked[0]:.2f} s | {forked[1]:.2f} s | {forked[2]:.2f} s | {forked[3]:.2f} s | {forked[1] + forked[3]:.2f} s |

Start: bwrap, the kernel ready, the grader's prelude run (it imports numpy). A forked kernel's
CPU counts from its fork. The fork server itself, once per grading process: {zygote_wall:.2f} s
to ready, {zygote_cpu:.2f} CPU-s (its imports: ipykernel and what its start needs, numpy,
matplotlib.pyplot).
"""
    print(body)
    if args.write:
        write_section("A sandboxed kernel, started anew or forked (issue 19)", body,
                      f".venv/bin/python bench/kernel_start.py --repeats {args.repeats} --write")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
