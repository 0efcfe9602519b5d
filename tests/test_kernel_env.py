"""What reaches the student's kernel (and the model worker) from the grader's environment: under
bwrap, nothing but a fixed minimal environment, the exercise's [kernel] env and the device's
variables; the grader's secrets (cloud keys, tokens, its HOME, agent sockets, LD_PRELOAD,
PYTHONPATH) never do. The command lines are built and read here, nothing is started."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from grader import sandbox
from grader.device import kernel_env as device_env
from grader.model_worker import ModelWorker, WorkerSettings
from grader.sandbox import SUBMISSION_NAME, Sandbox
from grader.spec import Limits, load_exercise

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-wJalrXUtnFEMI",
    "GITHUB_TOKEN": "ghp_grader_token_16C7e42F292c",
    "HOME": "/root/the-graders-home",          # (a folder under tmp_path in the tests)
    "SSH_AUTH_SOCK": "/tmp/ssh-agent-of-the-grader.sock",
    "LD_PRELOAD": "/opt/grader/libspy.so",
    "PYTHONPATH": "/opt/grader-private-modules",
    "JPY_SESSION_NAME": "graders-session",
    "CONVGRADE_DB_PASSWORD": "hunter2",
}


@pytest.fixture
def graders_environment(monkeypatch, tmp_path):
    home = tmp_path / "the-graders-home"  # (a real folder: IPython, imported here, writes under it)
    home.mkdir()
    monkeypatch.setitem(SECRETS, "HOME", str(home))
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    real_which = shutil.which  # bwrap counted as installed: its command line is only built
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}" if name == "bwrap"
                        else real_which(name, *a, **k))


@pytest.fixture
def exercise_env(tmp_path: Path) -> dict[str, str]:
    """An exercise's [kernel] env, as load_exercise reads it from spec.toml."""
    root = tmp_path / "keras_exercise"
    root.mkdir()
    (root / "spec.toml").write_text(textwrap.dedent("""
        [kernel]
        env = { TF_USE_LEGACY_KERAS = "1", COURSE_FLAG = "on" }

        [[items]]
        name = "f"
        points = 1
        """))
    (root / "checks.py").write_text("from grader.checks import Check\n"
                                    "CHECKS = {'f': [Check('works', run=lambda s, c: None)]}\n")
    return load_exercise(str(root)).kernel_env


def bwrap_env(argv: list[str]) -> dict[str, str]:
    """The environment bwrap gives the process it starts: after --clearenv, its --setenv pairs."""
    start = argv.index("--clearenv")
    env, i = {}, start + 1
    while argv[i] == "--setenv":
        env[argv[i + 1]] = argv[i + 2]
        i += 3
    assert "--setenv" not in argv[:start] and "--setenv" not in argv[i:], "an environment variable set outside"
    return env


def assert_no_secret(env: dict[str, str], argv: list[str]) -> None:
    """No secret's value anywhere; HOME and PYTHONPATH may be set, to the sandbox's own."""
    leaked = [key for key in SECRETS if key in env and key not in ("HOME", "PYTHONPATH")]
    assert leaked == [], leaked
    shown = " ".join([*argv, *env.values()])
    assert [v for v in SECRETS.values() if v in shown] == []


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "s"
    for name in ("work", "home", "exchange"):
        (folder / name).mkdir(parents=True)
    (folder / "work" / SUBMISSION_NAME).write_text("{}")
    return folder


def test_the_kernel_gets_no_secret_of_the_graders(graders_environment, exercise_env, scratch):
    box = Sandbox("bwrap", scratch, Limits(), {**exercise_env, **device_env("cpu")})
    try:
        km, start = box.kernel_manager()
        env = bwrap_env(km.wrapper)
        assert_no_secret(env, km.wrapper)
        assert_no_secret(start["env"], [])          # nor the bwrap process itself
    finally:
        box.close()
    assert env["HOME"] == str(scratch / "home")     # the kernel's own home, not the grader's
    assert env["PATH"].split(":")[-2:] == ["/usr/bin", "/bin"]
    assert {k: env[k] for k in exercise_env} == {"TF_USE_LEGACY_KERAS": "1", "COURSE_FLAG": "on"}
    assert env["CUDA_VISIBLE_DEVICES"] == device_env("cpu")["CUDA_VISIBLE_DEVICES"]


def test_the_model_worker_gets_no_secret_of_the_graders(graders_environment, exercise_env):
    worker = ModelWorker(WorkerSettings("bwrap", Limits(), env={**exercise_env, **device_env("cpu")}))
    try:
        argv = worker.command()
    finally:
        worker.close()
    env = bwrap_env(argv)
    assert_no_secret(env, argv)
    assert env["HOME"] == "/tmp" and env["TF_USE_LEGACY_KERAS"] == "1" and env["COURSE_FLAG"] == "on"


def test_without_a_sandbox_the_grader_says_its_environment_is_shared(graders_environment, exercise_env, scratch):
    """--sandbox none is documented as unprotected ("your environment"): the secrets do reach the
    kernel there, the Jupyter and ConvGrade variables of the grader's own session do not."""
    box = Sandbox("none", scratch, Limits(), exercise_env)
    try:
        env = box.kernel_manager()[1]["env"]
    finally:
        box.close()
    assert "your environment" in sandbox.UNPROTECTED
    assert env["GITHUB_TOKEN"] == SECRETS["GITHUB_TOKEN"] and env["COURSE_FLAG"] == "on"
    assert "JPY_SESSION_NAME" not in env and "CONVGRADE_DB_PASSWORD" not in env
