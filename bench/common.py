"""Shared pieces of the benchmarks: sample notebooks, timing, writing BENCHMARKS.md sections."""

from __future__ import annotations

import platform
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "exercises" / "conv_step_by_step" / "samples"
HELPERS = ROOT / "exercises" / "conv_step_by_step" / "helpers"
GRADABLE = sorted(p for p in SAMPLES.glob("*.ipynb") if p.stem not in ("not_a_notebook", "truncated"))


def make_class(folder: Path, n: int) -> list[Path]:
    """n student folders, each holding one of the gradable samples (cycled)."""
    paths = []
    for i in range(n):
        target = folder / f"student{i:03d}" / "W1A1.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(GRADABLE[i % len(GRADABLE)], target)
        paths.append(target)
    return paths


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def write_section(title: str, body: str, command: str) -> None:
    """Replace (or append) the section `title` of BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nEvery figure is measured in one run on the machine named, by the script and command "
        "given; ratios matter more than seconds.\n")
    section = (f"## {title}\n\nCommand: `{command}`  \nMachine: {machine()}, "
               f"{time.strftime('%Y-%m-%d')}\n\n{body.strip()}\n")
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text)
