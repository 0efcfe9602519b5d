"""--device: CPU everywhere, GPU only where one is visible (those tests skip cleanly elsewhere)."""

from __future__ import annotations

import pytest

import grade
from grader import device, spec
from grader.grading import grade_submission

SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"


def test_cpu_pins_the_kernel_away_from_gpus():
    assert device.resolve("cpu") == "cpu"
    assert device.kernel_env("cpu") == {"CUDA_VISIBLE_DEVICES": "-1"}
    assert device.device_files("cpu") == []


def test_auto_picks_what_is_there():
    assert device.resolve("auto") == ("gpu" if device.gpu_available() else "cpu")


@pytest.mark.skipif(device.gpu_available(), reason="a GPU is present")
def test_asking_for_a_missing_gpu_is_a_usage_error(tmp_path):
    with pytest.raises(device.DeviceUnavailable, match="no NVIDIA GPU"):
        device.resolve("gpu")
    assert grade.main(["--exercise", "conv_step_by_step", "--device", "gpu", "--gradebook",
                       str(tmp_path / "g.sqlite"), str(SAMPLES / "truncated.ipynb")]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not device.gpu_available(), reason="needs an NVIDIA GPU")
def test_gpu_grading_agrees_with_cpu():
    exercise = spec.load_exercise("resnet50")
    sample = exercise.samples / "correct.ipynb"
    on_gpu = grade_submission(sample, exercise, device="gpu")
    assert on_gpu.environment["device"] == "gpu"
    assert on_gpu.score == grade_submission(sample, exercise, device="cpu").score == exercise.max_score


def test_results_record_device_and_versions():
    env = device.environment("cpu")
    assert env["device"] == "cpu" and env["numpy"].count(".") >= 1 and env["python"]
