"""How the student's kernel process is started: the sandbox around it.

`none` runs the kernel as this user with resource limits only (prlimit);
`bwrap` (see issue 3) adds namespaces and a minimal filesystem view. Both are a
KernelManager whose command line is wrapped, so the rest of the grader does not
know which one it talks to.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from .spec import Limits

MODES = ("none",)


def rlimit_args(limits: Limits) -> list[str]:
    """prlimit options for the kernel (inherited by everything it starts)."""
    mb = 1024 * 1024
    return [
        f"--as={limits.memory_mb * mb}",
        f"--fsize={limits.file_size_mb * mb}",
        f"--nofile={limits.open_files}",
        f"--cpu={limits.cpu_seconds}",
        "--core=0",
    ]


class WrappedKernelManager(AsyncKernelManager):
    """A KernelManager whose kernel command is prefixed by a wrapper command.

    jupyter_client 8 ignores KernelManager.kernel_cmd, so the wrapping happens
    in format_kernel_cmd, the one place every start and restart goes through.
    """

    wrapper: list[str] = []

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        return [*self.wrapper, *cmd]


def kernel_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: this one, minus secrets-by-accident, plus determinism."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "CONVGRADE_"))}
    env.update(
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        OPENBLAS_NUM_THREADS=env.get("OPENBLAS_NUM_THREADS", "1"),
        MKL_NUM_THREADS=env.get("MKL_NUM_THREADS", "1"),
    )
    env.update(extra or {})
    return env


def kernel_manager(mode: str, workdir: Path, exchange: Path, limits: Limits) -> tuple[AsyncKernelManager, dict[str, Any]]:
    """A kernel manager for `mode` and the keyword arguments for start_kernel."""
    if mode != "none":
        raise ValueError(f"unknown sandbox mode {mode!r} (choose from {', '.join(MODES)})")
    km = WrappedKernelManager(kernel_name="python3", transport="ipc", ip=str(exchange.parent / "ipc" / "kernel"),
                              connection_file=str(exchange.parent / "ipc" / "kernel.json"))
    (exchange.parent / "ipc").mkdir(exist_ok=True)
    prlimit = shutil.which("prlimit")
    km.wrapper = [prlimit, *rlimit_args(limits), "--"] if prlimit else []
    # The kernel is always this interpreter's ipykernel, whatever the notebook's metadata says.
    km.kernel_spec.argv[0] = sys.executable
    return km, {"cwd": str(workdir), "env": kernel_environment()}
