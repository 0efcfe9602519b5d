"""The grader's side of the model worker: a sandboxed process that builds student models.

A student's model comes back from the kernel as a description (JSON text). A description is
code (op layers name TensorFlow functions), so the grader never builds one: it checks the
description against the allowlist (boundary.check_description), then asks the model worker
(model_server.py) for what the checks need (the model's structure, its outputs, its training
scores), and gets plain data back in model_wire's format.

The worker is started like the kernel (sandbox.py): bubblewrap without network, the system and
this Python read-only, a private /tmp, a seccomp filter, as nobody when the grader is root, in a
cgroup of its own for memory and processes (rlimits where no cgroup can be made), and an
address-space limit. It sees only a folder the grader made for it before it started, read-only:

    /convgrade/code/grader/         a copy of the grader package (its .py files)
    /convgrade/code/model_recipes.py  the exercise's training recipes (a copy)
    /convgrade/code/trusted/N.py    the trusted layer files of the versions the exercise grades
    /convgrade/code/trusted.json    which version's layers each is (version -> file, module, classes)
    /convgrade/data/                a copy of the exercise's data folder
    /convgrade/files/NAME           a copy of each data file (e.g. the pretrained weights)

No reference/ sources, no samples, no student code or kernel folder. Each request has a wall
deadline (call_timeout; train_timeout for training) and a CPU-time budget; a worker that misses
its deadline is killed, one that dies (memory, CPU time) is noticed, and either way the request
fails with the cause (WorkerFault) and the next request starts a fresh worker. One worker
serves every submission of a grading process (TensorFlow is imported once); it is started
early (start()) so that its import overlaps the notebook's run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import cgroups, seccomp
from .model_wire import Closed, TimedOut, WireError, encode, read_message
from .sandbox import (NOBODY, bind_args, check_available, kernel_environment, python_roots, rlimit_args,
                      system_args, without_nproc)
from .scratch import remove_tree
from .spec import Limits, TrustedLayers

GRADER = Path(__file__).resolve().parent
INSIDE = Path("/convgrade")
START_TIMEOUT = 180.0       # seconds for the worker to import TensorFlow and say it is ready
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerFault(Exception):
    """The worker did not answer (deadline, death, garbled answer); the message says why."""

    def __init__(self, cause: str, *, student: bool = True):
        super().__init__(cause)
        self.cause = cause
        self.student = student   # False: the worker could not start at all (not the model's doing)


class ModelRefused(Exception):
    """The worker answered that the model could not do what was asked (kind and message)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _copy_tree(source: Path, target: Path) -> None:
    """A private, readable copy (folders 0755, files 0644) of the regular files under `source`."""
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    for entry in sorted(source.iterdir()):
        if entry.name == ".complete" or entry.is_symlink():  # the stand-ins' marker; links not followed
            continue
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        elif entry.is_file():
            shutil.copyfile(entry, target / entry.name)
            os.chmod(target / entry.name, 0o644)


@dataclass
class WorkerSettings:
    """Everything a model worker is made from, decided before it first starts."""

    mode: str                                  # "bwrap" or "none", as the kernel's sandbox
    limits: Limits
    recipes: Path | None = None                # the exercise's model_recipes.py
    data: Path | None = None                   # the exercise's data folder
    files: Mapping[str, Path] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)    # e.g. TF_USE_LEGACY_KERAS, the device's
    devices: tuple[str, ...] = ()              # device nodes (a GPU's)
    trusted: Mapping[str, TrustedLayers] = field(default_factory=dict)  # version -> its trusted layers


def code_digest(settings: WorkerSettings) -> str:
    """A digest of the code a training's outcome depends on besides the model, its data and
    budget: the grader's source (the worker, its server, the canonical architecture) and the
    exercise's model_recipes.py and trusted layer files. Part of every stored training score's
    key (ModelWorker.code): a changed recipe or grader never serves a score trained by the old one."""
    from .batch import grader_version   # (batch imports grading, which imports this module)
    digest = hashlib.sha256(grader_version().encode())
    for path in [settings.recipes, *(t.file for t in settings.trusted.values())]:
        digest.update(b"\0" + (path.read_bytes() if path is not None else b""))
    return digest.hexdigest()[:32]


class ModelWorker:
    """One model worker (restarted after a fault); use as a context manager or close()."""

    def __init__(self, settings: WorkerSettings):
        check_available(settings.mode)
        self.settings = settings
        self.limits = settings.limits
        self.code = code_digest(settings)   # read before the worker first starts
        self._folder: Path | None = None
        self._argv: list[str] | None = None
        self._env: dict[str, str] = {}
        self._proc: subprocess.Popen | None = None
        self._answers: int | None = None
        self._requests: int | None = None
        self._ready = False
        self._group: cgroups.SandboxGroup | None = None
        self._log: Any = None
        self.starts = 0
        # The checks that passed on a model of this process's grading, by keras_checks.pass_key
        # (the check, its inputs and the model's canonical architecture): the seconds each took.
        # A later model of the same architecture passes them without being built (the worker is
        # long-lived per grading process, so this spans a batch's submissions).
        self.known_passes: dict[str, float] = {}

    # -- setting up, once -----------------------------------------------------------------------
    def _prepare(self) -> None:
        """The worker's folder and command line, made once (before the first start)."""
        s = self.settings
        folder = Path(tempfile.mkdtemp(prefix="convgrade-model-"))
        self._folder = folder
        code = folder / "code"
        code.mkdir(mode=0o755)
        os.chmod(code, 0o755)
        (code / "grader").mkdir(mode=0o755)
        os.chmod(code / "grader", 0o755)
        for source in sorted(GRADER.glob("*.py")):
            shutil.copyfile(source, code / "grader" / source.name)
            os.chmod(code / "grader" / source.name, 0o644)
        if s.recipes is not None:
            shutil.copyfile(s.recipes, code / "model_recipes.py")
            os.chmod(code / "model_recipes.py", 0o644)
        manifest = {}
        if s.trusted:
            (code / "trusted").mkdir(mode=0o755)
            os.chmod(code / "trusted", 0o755)
        for n, (version, layers) in enumerate(sorted(s.trusted.items())):
            shutil.copyfile(layers.file, code / "trusted" / f"{n}.py")
            os.chmod(code / "trusted" / f"{n}.py", 0o644)
            manifest[version] = {"file": f"trusted/{n}.py", "module": layers.module, "classes": list(layers.classes)}
        if manifest:
            (code / "trusted.json").write_text(json.dumps(manifest))
            os.chmod(code / "trusted.json", 0o644)
        (folder / "data").mkdir(mode=0o755)
        if s.data is not None:
            _copy_tree(s.data, folder / "data" / "d")
        files = folder / "files"
        files.mkdir(mode=0o755)
        os.chmod(files, 0o755)
        for name, path in sorted(s.files.items()):
            shutil.copyfile(path, files / name)
            os.chmod(files / name, 0o644)
        fd = os.open(folder / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        self._log = os.fdopen(fd, "ab")
        sandboxed = s.mode == "bwrap"
        root = INSIDE if sandboxed else folder
        env = kernel_environment(sandboxed, dict(s.env))
        for key in THREAD_VARIABLES:  # TensorFlow trains on every core, as it did in the grader
            if key not in os.environ:
                env.pop(key, None)
        env.update(HOME="/tmp" if sandboxed else str(folder), PYTHONPATH=str(root / "code"),
                   TF_USE_LEGACY_KERAS="1", PYTHONSAFEPATH="1", PYTHONNOUSERSITE="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._env = env
        command = [sys.executable, "-m", "grader.model_server",
                   *([f"--trusted={root / 'code' / 'trusted.json'}"] if manifest else []),
                   str(root / "code" / "model_recipes.py") if s.recipes is not None else "-",
                   str(root / "data" / "d") if s.data is not None else "-",
                   *(f"{name}={root / 'files' / name}" for name in sorted(s.files))]
        limits = rlimit_args(self.limits, processes=sandboxed, cpu=False)
        prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
        if not sandboxed:
            self._argv = [prlimit, *limits, "--", *command]
            return
        as_root = os.geteuid() == 0
        argv = system_args(self.limits, list(s.devices), as_root)
        argv += bind_args([("--ro-bind", r) for r in python_roots()], {Path("/tmp")})
        argv += ["--perms", "0755", "--dir", str(INSIDE)]
        for part in ("code", "data", "files"):
            argv += ["--ro-bind", str(folder / part), str(INSIDE / part)]
        argv += ["--chdir", "/tmp", "--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        self._argv = argv
        self._tail = ["--", prlimit, *limits, "--"]
        if as_root:
            self._tail += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "--no-new-privs", "--"]
        self._tail += command

    def command(self) -> list[str]:
        """The worker's command line (without the cgroup launcher and seccomp descriptor)."""
        if self._argv is None:
            self._prepare()
        assert self._argv is not None
        return [*self._argv, *getattr(self, "_tail", [])]

    # -- running -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker if it is not running (without waiting for it to be ready)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        if self._argv is None:
            self._prepare()
        assert self._argv is not None and self._log is not None
        argv, pass_fds, filter_fd = list(self._argv), (), None
        group = cgroups.create(cgroups.unique_name("model"), self.limits.memory_mb * 1024 * 1024,
                               self.limits.processes)
        if self.settings.mode == "bwrap":
            filter_fd = seccomp.filter_pipe()
            pass_fds = (filter_fd,)
            tail = self._tail
            if not isinstance(group, cgroups.Unavailable) and group.limits_pids():
                tail = without_nproc(tail)   # the group counts this worker's processes exactly
            argv = [*argv, "--seccomp", str(filter_fd), *tail]
        if not isinstance(group, cgroups.Unavailable):
            self._group = group
            argv = [*cgroups.launcher(group), *argv]
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                          env=self._env, cwd=str(self._folder), pass_fds=pass_fds,
                                          start_new_session=True)
        finally:
            if filter_fd is not None:
                os.close(filter_fd)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._requests, self._answers = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        flags = fcntl.fcntl(self._requests, fcntl.F_GETFL)
        fcntl.fcntl(self._requests, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._ready = False
        self.starts += 1

    def _wait_ready(self) -> None:
        if self._ready:
            return
        assert self._answers is not None
        try:
            answer = read_message(self._answers, 1 << 16, time.monotonic() + START_TIMEOUT)
        except WireError as exc:
            why = self._why_stopped(exc, "starting")
            self._stop()
            raise WorkerFault(f"the model worker could not start ({why}){self._log_tail()}", student=False) from None
        if not answer.get("ready"):
            self._stop()
            raise WorkerFault("the model worker could not start (it did not say it was ready)", student=False)
        self._ready = True

    def request(self, message: dict[str, Any], *, timeout: float, what: str) -> dict[str, Any]:
        """Send `message`, return the worker's answer (ok) or raise ModelRefused / WorkerFault.

        `what` names the work for the messages ("building the model", "training the model").
        """
        self.start()
        self._wait_ready()
        assert self._requests is not None and self._answers is not None
        deadline = time.monotonic() + timeout
        message = {**message, "cpu_seconds": timeout * max(1, os.cpu_count() or 1)}
        try:
            self._send(encode(message), deadline)
            answer = read_message(self._answers, int(self.limits.max_result_mb * 1024 * 1024), deadline)
        except (WireError, OSError) as exc:
            why = self._why_stopped(exc, what, timeout)
            self._stop()
            raise WorkerFault(why) from None
        if answer.get("ok") is True:
            return answer
        kind, text = answer.get("kind"), answer.get("message")
        raise ModelRefused(kind if isinstance(kind, str) else "failed",
                           text if isinstance(text, str) else "the model worker gave no reason")

    def _send(self, data: bytes, deadline: float) -> None:
        assert self._requests is not None
        view = memoryview(data)
        while view:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([], [self._requests], [], wait)[1]:
                raise TimedOut("the worker did not take the request in time")
            try:
                view = view[os.write(self._requests, view[:1 << 20]):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise Closed("the worker stopped") from None

    def _why_stopped(self, exc: BaseException, what: str, timeout: float | None = None) -> str:
        if isinstance(exc, TimedOut) and timeout is not None:
            return f"{what} did not finish within {timeout:g} s, the grader's time limit for it"
        if isinstance(exc, Closed | BrokenPipeError):
            code = self._proc.wait(timeout=10) if self._proc is not None else None
            died = -code if code is not None and code < 0 else code - 128 if code is not None and code > 128 else None
            memory = f"the {self.limits.memory_mb} MB of memory the grader allows"
            if self._group is not None and self._group.oom_kills():
                return f"{what} used more than {memory}"
            if died == signal.SIGXCPU:
                return f"{what} used more CPU time than the grader allows"
            if died == signal.SIGKILL:
                return f"{what} was stopped (killed, most likely for using more than {memory})"
            if died in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
                return (f"the model worker crashed while {what} ({signal.Signals(died).name}); for a model of the "
                        f"allowed layers that most often means it needs more than {memory}")
            return f"the model worker stopped while {what} (exit status {code})"
        return f"the model worker's answer while {what} could not be read ({exc})"

    def _log_tail(self) -> str:
        if self._folder is None:
            return ""
        try:
            with open(self._folder / "worker.log", "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 2000))
                lines = [line for line in f.read().decode(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return f": {lines[-1][:300]}" if lines else ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self._group is not None:
            self._group.close()
            self._group = None
        self._ready = False
        self._requests = self._answers = None

    def close(self) -> None:
        self._stop()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._folder is not None:
            remove_tree(self._folder)
            self._folder = None

    def __enter__(self) -> "ModelWorker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- what the checks see ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerFacts:
    name: str
    class_name: str
    trainable: bool
    weights: int
    config: dict[str, Any]
    output_shape: Any
    model: "ModelFacts | None" = None
    weight_shapes: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class ModelFacts:
    """A model's structure as the worker saw it, validated (plain data; see model_server.model_facts)."""

    class_name: str
    name: str
    built: bool
    trainable: bool
    layers: tuple[LayerFacts, ...]
    input_shape: Any = None
    output_shape: Any = None
    summary: list | None = None
    counts: dict[str, int] | None = None

    @staticmethod
    def parse(doc: Any) -> "ModelFacts":
        """From the worker's answer; WireError if any field is not of its kind."""
        def need(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise WireError(f"the model's facts have a malformed {what}")
            return value

        need(doc, dict, "record")
        layers = []
        for entry in need(doc.get("layers"), list, "layer list"):
            need(entry, dict, "layer")
            shapes = tuple(tuple(need(n, int, "weight shape") for n in need(shape, list, "weight shape"))
                           for shape in need(entry.get("weight_shapes", []), list, "weight shapes"))
            layers.append(LayerFacts(need(entry.get("name"), str, "layer name"),
                                     need(entry.get("class"), str, "layer class"),
                                     need(entry.get("trainable"), bool, "trainable flag"),
                                     need(entry.get("weights"), int, "weight count"),
                                     need(entry.get("config"), dict, "layer config"),
                                     entry.get("output_shape"),
                                     ModelFacts.parse(entry["model"]) if entry.get("model") is not None else None,
                                     shapes))
        counts = doc.get("counts")
        if counts is not None:
            counts = {k: need(counts.get(k), int, "parameter count") for k in ("total", "trainable", "non-trainable")}
        summary = doc.get("summary")
        return ModelFacts(need(doc.get("class"), str, "class"), need(doc.get("name"), str, "name"),
                          need(doc.get("built"), bool, "built flag"), need(doc.get("trainable"), bool, "trainable"),
                          tuple(layers), doc.get("input_shape"), doc.get("output_shape"),
                          need(summary, list, "summary") if summary is not None else None, counts)


class RemoteModel:
    """A model as the checks see it: its description, and what the worker answers about it.

    failure: for a student's model, the exception (the checks' Failure) raised when the worker
    cannot do what was asked with it (not rebuildable, a call that raises, out of time or memory,
    an answer too large), its message starting with `where`.
    fault: the exception raised for what is not the model's doing (the worker cannot start, an
    answer that is not of the wire format; for the reference, failure=None: anything at all), so
    that it is never charged to a student. Without either, ModelRefused and WorkerFault go through.
    """

    def __init__(self, worker: ModelWorker, description: str, where: str,
                 failure: type[Exception] | None = None, fault: type[Exception] | None = None, version: str = ""):
        self.worker, self.description, self.where = worker, description, where
        self.version = version   # the published version graded: the worker rebuilds its own layers (trusted)
        self.failure, self.fault = failure, fault
        self._facts: ModelFacts | None = None

    def _not_ours(self, text: str) -> Exception:
        return (self.fault or WorkerFault)(f"{self.where}: {text}")

    def _ask(self, message: dict[str, Any], what: str, timeout: float | None = None) -> dict[str, Any]:
        try:
            return self.worker.request({**message, "model": self.description, "version": self.version},
                                       timeout=timeout or self.worker.limits.call_timeout, what=what)
        except ModelRefused as exc:
            text = str(exc)
            if exc.kind == "weights":
                text = f"the reference's weights do not fit this model ({text[:200]}); see the architecture check"
            if self.failure is not None:
                raise self.failure(f"{self.where}: {text}") from None
            if self.fault is not None:
                raise self.fault(f"{self.where}: {text}") from None
            raise
        except WorkerFault as exc:
            if self.failure is not None and exc.student:
                raise self.failure(f"{self.where}: {exc.cause}") from None
            if self.fault is not None:
                raise self.fault(f"{self.where}: {exc.cause}") from None
            raise

    @property
    def facts(self) -> ModelFacts:
        """The model's structure (asked once)."""
        if self._facts is None:
            answer = self._ask({"op": "facts"}, "building the model")
            try:
                self._facts = ModelFacts.parse(answer.get("facts"))
            except (WireError, RecursionError) as exc:
                raise self._not_ours(f"the model worker's description of the model is malformed ({exc})") from None
        return self._facts

    def outputs(self, X: np.ndarray, training: bool, seed: int | None = None, repeat: int = 1) -> list[np.ndarray]:
        """model(X, training) `repeat` times, after TensorFlow's seed is set to `seed` (if given)."""
        answer = self._ask({"op": "outputs", "X": X, "training": training, "seed": seed, "repeat": repeat},
                           "calling the model")
        outputs = answer.get("outputs")
        if not (isinstance(outputs, list) and len(outputs) == repeat
                and all(isinstance(o, np.ndarray) for o in outputs)):
            raise self._not_ours("the model worker's outputs are not arrays")
        return outputs

    def forward(self, weights: list[np.ndarray], X: np.ndarray, training: bool) -> np.ndarray:
        """model(X, training) with `weights` set (e.g. the reference's)."""
        answer = self._ask({"op": "forward", "weights": list(weights), "X": X, "training": training},
                           "calling the model with the reference's weights")
        if not isinstance(answer.get("output"), np.ndarray):
            raise self._not_ours("the model worker's output is not an array")
        return answer["output"]

    def train(self, recipe: str, params: Mapping[str, Any], seed: int) -> dict[str, float]:
        """The exercise's training `recipe` on a fresh build under `seed`: its scores."""
        answer = self._ask({"op": "train", "recipe": recipe, "params": dict(params), "seed": seed},
                           "training the model", timeout=self.worker.limits.train_timeout)
        scores = answer.get("scores")
        if not (isinstance(scores, dict) and all(isinstance(v, float) for v in scores.values())):
            raise self._not_ours("the model worker's training scores are not numbers")
        return scores
