"""Matplotlib's font list, built once per machine and given to every sandboxed kernel.

A sandboxed kernel starts with an empty home (sandbox.KERNEL_HOME), so the first `import
matplotlib.pyplot` of every notebook (every course notebook has one) would list and parse the
machine's fonts again: about 0.3 s here, seconds on a machine with many fonts, for every
submission. The grader builds the list once, with the kernel's interpreter and an empty home as
the kernel has (no font of the grader's own home is listed), keeps it in the data cache
(`<cache>/matplotlib/<key>/fontlist-*.json`), and copies it into each kernel's home before the
kernel starts. It is only a cache: a kernel that finds it stale or wrong builds its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

BUILD_TIMEOUT = 300  # seconds; past it (or on any failure) kernels build their own list

_BUILD = "import matplotlib, matplotlib.font_manager; print(matplotlib.get_cachedir())"


def font_list(cache: Path, python: str = sys.executable) -> Path | None:
    """The font list file for kernels running `python` (built into `cache` on first use), or None
    when matplotlib is not there or the list cannot be built."""
    return _font_list(cache.resolve(), python)


@lru_cache(maxsize=4)
def _font_list(cache: Path, python: str) -> Path | None:
    key = hashlib.sha256(f"{python}\0{_installed(python)}".encode()).hexdigest()[:16]
    folder = cache / "matplotlib" / key
    found = sorted(folder.glob("fontlist-*.json"))
    if found:
        return found[-1]
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".build-") as tmp:
            home, config = Path(tmp) / "home", Path(tmp) / "config"
            home.mkdir()
            env = {"PATH": f"{Path(python).parent}:/usr/bin:/bin", "HOME": str(home), "MPLCONFIGDIR": str(config),
                   "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "PYTHONNOUSERSITE": "1"}
            done = subprocess.run([python, "-c", _BUILD], env=env, cwd=home, capture_output=True,
                                  timeout=BUILD_TIMEOUT, check=False)
            built = sorted(config.glob("fontlist-*.json"))
            if done.returncode or not built:
                return None
            staged = Path(tmp) / "staged"
            staged.mkdir()
            shutil.copyfile(built[-1], staged / built[-1].name)
            try:
                os.rename(staged, folder)  # all or nothing; another process may have won the race
            except OSError:
                pass
    except (OSError, subprocess.SubprocessError):
        return None
    found = sorted(folder.glob("fontlist-*.json"))
    return found[-1] if found else None


def _installed(python: str) -> str:
    """What the list depends on besides the fonts: matplotlib's version, found without importing it
    here (the grader need not have it; the kernel's interpreter is what counts)."""
    if python != sys.executable:
        return python
    from importlib import metadata

    try:
        return metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return "none"


def give_to_kernel(cache: Path, config_dir: Path) -> None:
    """Copy the font list into a kernel's MPLCONFIGDIR `config_dir` (made here), if there is one
    (the sandbox binds it read-only, as every file of the kernel's home made before it starts)."""
    found = font_list(cache)
    if found is None:
        return
    config_dir.mkdir(exist_ok=True)
    try:
        shutil.copyfile(found, config_dir / found.name)
    except FileNotFoundError:  # removed since it was found (the cache cleared): built again next time
        _font_list.cache_clear()
