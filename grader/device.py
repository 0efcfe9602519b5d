"""Which device grades: `--device auto|cpu|gpu`, and what is recorded about the environment."""

from __future__ import annotations

import glob
import platform
import shutil
import subprocess
import sys
from functools import lru_cache

DEVICES = ("auto", "cpu", "gpu")


class DeviceUnavailable(Exception):
    pass


@lru_cache(maxsize=1)
def gpu_available() -> bool:
    """An NVIDIA GPU is visible (device files and nvidia-smi), without importing a framework."""
    if not glob.glob("/dev/nvidia[0-9]*") or not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def resolve(device: str) -> str:
    if device not in DEVICES:
        raise DeviceUnavailable(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not gpu_available():
        raise DeviceUnavailable("--device gpu: no NVIDIA GPU is visible here (nvidia-smi -L lists none)")
    return device


def kernel_env(device: str) -> dict[str, str]:
    """Environment that pins a kernel (and anything it starts) to the device."""
    return {"CUDA_VISIBLE_DEVICES": "-1"} if device == "cpu" else {"NVIDIA_TF32_OVERRIDE": "0"}


def device_files(device: str) -> list[str]:
    """Device nodes a sandboxed kernel needs to reach the GPU."""
    return sorted(glob.glob("/dev/nvidia*")) if device == "gpu" else []


def environment(device: str) -> dict[str, str]:
    """What a result was computed with: device and the versions that can change numbers."""
    env = {"device": device, "python": platform.python_version(), "platform": platform.machine()}
    for name in ("numpy", "tensorflow", "tf_keras"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "__version__"):
            env[name] = module.__version__
        else:
            try:
                from importlib.metadata import version

                env[name] = version(name.replace("_", "-"))
            except Exception:
                pass
    return env
