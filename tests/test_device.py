"""--device: what each choice does to the kernel and the model worker, and how "auto" decides.

The GPU probe (device files, `nvidia-smi -L`) is replaced by fakes, so every case runs on any
machine: with and without an NVIDIA GPU, a broken driver, a missing nvidia-smi. What the kernel
may see is judged by CUDA's own rule for CUDA_VISIBLE_DEVICES, not by the variable's text.
"""

from __future__ import annotations

import glob
import subprocess

import pytest

from grader import device, sandbox, spec
from grader.spec import Limits

SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"
NODES = ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"]


def cuda_visible(env: dict[str, str], physical: int) -> list[int]:
    """The GPUs (of `physical`) a CUDA program started with `env` can use: CUDA_VISIBLE_DEVICES
    unset, all of them; else the indices it lists, up to the first one that is not a device
    (NVIDIA's CUDA C Programming Guide, "CUDA Environment Variables")."""
    if "CUDA_VISIBLE_DEVICES" not in env:
        return list(range(physical))
    visible = []
    for part in env["CUDA_VISIBLE_DEVICES"].split(","):
        if not part.strip().isdigit() or int(part) >= physical:
            break
        visible.append(int(part))
    return visible


@pytest.fixture
def machine(monkeypatch):
    """machine(gpus=..., smi=...): the probe sees `gpus` device nodes and an nvidia-smi that
    answers `smi` ("list", "none", "fails", "hangs", or None: not installed)."""
    calls: list[list[str]] = []
    real_glob, real_run, real_which = glob.glob, subprocess.run, device.shutil.which

    def make(gpus: int = 0, smi: str | None = "list") -> list[list[str]]:
        nodes = [f"/dev/nvidia{i}" for i in range(gpus)] + (["/dev/nvidiactl", "/dev/nvidia-uvm"] if gpus else [])

        def fake_glob(pattern: str, *args, **kwargs) -> list[str]:
            if not pattern.startswith("/dev/nvidia"):
                return real_glob(pattern, *args, **kwargs)
            digits = pattern == "/dev/nvidia[0-9]*"
            return [n for n in nodes if not digits or n[len("/dev/nvidia"):][:1].isdigit()]

        def fake_run(argv, *args, **kwargs):
            if list(argv)[:1] != ["nvidia-smi"]:
                return real_run(argv, *args, **kwargs)
            calls.append(list(argv))
            if smi == "hangs":
                raise subprocess.TimeoutExpired(argv, kwargs.get("timeout", 0))
            if smi == "fails":
                return subprocess.CompletedProcess(argv, 9, "", "NVIDIA-SMI has failed: couldn't communicate")
            listed = "".join(f"GPU {i}: Tesla T4 (UUID: GPU-{i})\n" for i in range(gpus)) if smi == "list" else ""
            return subprocess.CompletedProcess(argv, 0, listed, "")

        monkeypatch.setattr(glob, "glob", fake_glob)
        monkeypatch.setattr(subprocess, "run", fake_run)
        monkeypatch.setattr(device.shutil, "which", lambda name, *a, **k: real_which(name, *a, **k)
                            if name != "nvidia-smi" else "/usr/bin/nvidia-smi" if smi else None)
        device.gpu_available.cache_clear()
        return calls

    yield make
    device.gpu_available.cache_clear()


def test_cpu_hides_every_gpu_from_the_kernel_and_the_model_worker(machine):
    machine(gpus=2)
    env = device.kernel_env("cpu")
    assert all(cuda_visible(env, n) == [] for n in range(1, 9))
    assert device.device_files("cpu") == []                  # no /dev/nvidia* bound into the sandbox
    args = sandbox.system_args(Limits(), device.device_files("cpu"), as_root=True)
    assert not any(a.startswith("/dev/nvidia") for a in args)


def test_gpu_shows_every_gpu_with_tf32_off_and_binds_its_device_nodes(machine):
    machine(gpus=2)
    env = device.kernel_env("gpu")
    assert cuda_visible(env, 2) == [0, 1]
    assert env.get("NVIDIA_TF32_OVERRIDE") == "0"            # TF32 off: results comparable with the CPU's
    nodes = device.device_files("gpu")
    assert set(nodes) == {"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"}
    args = sandbox.system_args(Limits(), nodes, as_root=True)
    assert all(["--dev-bind", n, n] == args[args.index(n) - 1:args.index(n) + 2] for n in nodes)


def test_auto_picks_the_gpu_where_one_answers(machine):
    machine(gpus=1)
    assert device.resolve("auto") == "gpu"
    assert device.resolve("gpu") == "gpu"


@pytest.mark.parametrize("gpus, smi", [
    (0, "list"),      # no device nodes: a machine without a GPU
    (1, None),        # nodes but no nvidia-smi (no driver utilities)
    (1, "fails"),     # a broken driver
    (1, "hangs"),     # nvidia-smi that never answers (20 s timeout)
    (1, "none"),      # nvidia-smi that lists no GPU
])
def test_auto_picks_the_cpu_where_no_gpu_answers(machine, gpus, smi):
    machine(gpus=gpus, smi=smi)
    assert device.resolve("auto") == "cpu"
    with pytest.raises(device.DeviceUnavailable, match=r"--device gpu: no NVIDIA GPU is visible here"):
        device.resolve("gpu")


def test_cpu_does_not_probe_for_a_gpu_at_all(machine):
    """--device cpu: nothing is asked of the driver (no nvidia-smi, no CUDA start-up noise)."""
    calls = machine(gpus=1)
    assert device.resolve("cpu") == "cpu"
    assert calls == []


def test_the_probe_is_asked_once_per_process(machine):
    calls = machine(gpus=1)
    assert [device.resolve("auto") for _ in range(3)] == ["gpu"] * 3
    assert calls == [["nvidia-smi", "-L"]]


@pytest.mark.parametrize("name", ["tpu", "GPU", "cuda", ""])
def test_an_unknown_device_is_refused_naming_it_and_the_choices(machine, name):
    calls = machine(gpus=1)
    with pytest.raises(device.DeviceUnavailable) as refused:
        device.resolve(name)
    assert str(refused.value) == f"unknown device {name!r} (choose from auto, cpu, gpu)"
    assert calls == []


def test_asking_for_a_missing_gpu_is_a_usage_error(machine, monkeypatch, tmp_path, capsys):
    import grade

    machine(gpus=0)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}")  # bwrap "installed"
    code = grade.main(["--exercise", "conv_step_by_step", "--device", "gpu", "--gradebook",
                       str(tmp_path / "g.sqlite"), str(SAMPLES / "truncated.ipynb")])
    assert code == 2
    assert "--device gpu: no NVIDIA GPU is visible here" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(not device.gpu_available(), reason="needs an NVIDIA GPU")
def test_gpu_grading_agrees_with_cpu():
    from grader.grading import grade_submission

    exercise = spec.load_exercise("resnet50")
    sample = exercise.samples / "correct.ipynb"
    on_gpu = grade_submission(sample, exercise, device="gpu")
    assert on_gpu.environment["device"] == "gpu"
    assert on_gpu.score == grade_submission(sample, exercise, device="cpu").score == exercise.max_score


def test_results_record_device_and_versions():
    import numpy

    env = device.environment("cpu")
    assert env["device"] == "cpu" and env["numpy"] == numpy.__version__ and env["python"].count(".") == 2
