"""What a fresh Jupyter kernel costs in CPU: its start, and the NumPy notebook's first imports.

    .venv/bin/python bench/kernel_cpu.py --repeats 5 --write

Starts a plain ipykernel (jupyter_client, no sandbox: the sandbox adds its own cost, measured by
bench/sandbox_cost.py), reads the kernel process's CPU seconds (/proc/<pid>/stat: user + system)
when it is ready, then after it runs `import numpy, matplotlib.pyplot` (what conv_step_by_step's
first cell imports). Best of --repeats. These two are what a kernel forked from a preloaded
process would not pay again per submission (README, "Throughput: what is not built yet").
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from jupyter_client import KernelManager

from common import write_section


def kernel_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_kernel() -> tuple[float, float, float, float]:
    """(start wall, start CPU, imports wall, imports CPU) of one fresh kernel."""
    started = time.perf_counter()
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=dict(os.environ))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        ready, pid = time.perf_counter(), km.provisioner.process.pid
        boot = kernel_cpu(pid)
        kc.execute_interactive("import numpy, matplotlib.pyplot", timeout=60)
        return ready - started, boot, time.perf_counter() - ready, kernel_cpu(pid) - boot
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    args = p.parse_args()
    runs = [one_kernel() for _ in range(args.repeats)]
    start_wall, start_cpu, imports_wall, imports_cpu = (min(r[i] for r in runs) for i in range(4))
    body = f"""
| one fresh kernel (best of {args.repeats}) | wall | kernel's CPU |
|---|---|---|
| start, until ready (ipykernel, IPython, jupyter_client) | {start_wall:.2f} s | {start_cpu:.2f} s |
| then `import numpy, matplotlib.pyplot` | {imports_wall:.2f} s | {imports_cpu:.2f} s |
| both | {start_wall + imports_wall:.2f} s | {start_cpu + imports_cpu:.2f} s |

What every sandboxed kernel of a NumPy submission pays before the student's own work (the
sandbox's share comes on top). A class of 24 on 2 cores pays {24 * (start_cpu + imports_cpu) / 2:.1f} s of wall time
for these alone; a kernel forked from a process that has them would not.
"""
    print(body)
    if args.write:
        write_section("What a fresh kernel costs (issue 19)", body,
                      f".venv/bin/python bench/kernel_cpu.py --repeats {args.repeats} --write")


if __name__ == "__main__":
    main()
