"""One grading run's settings, stated once: RunSettings.

Everything that can change a score besides the notebook and the grader's own code: the exercise
(its folder's files and the reference modules its checks use, by content), the sandbox, the
limits, the device, the tolerances and number of drawn examples, the data folder and data files
(by content), and whether only the public checks run. The command line builds it once with
build_settings (the one place these options are validated); it is passed whole to grading, to
local worker processes and to Dask workers (it pickles), and its hash is the provenance a stored
result is current for (gradebook.Provenance.spec_hash).

Where a thing lies (the exercise's folder, the data's paths) is not part of the hash: the same
bytes elsewhere are the same settings.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from . import device as devices
from . import sandbox as sandboxes
from .spec import Exercise, Limits, SpecError, Tolerance, limit_problem, load_exercise


class SettingsError(ValueError):
    """A setting that cannot be used (a usage error: the message names the option)."""


@dataclass(frozen=True)
class RunSettings:
    exercise: str                                   # the exercise's name
    exercise_root: Path                             # its folder (where it lies: not hashed)
    exercise_digest: str                            # its files (samples aside) and the references its checks use
    sandbox: str                                    # sandbox.MODES
    limits: Limits
    device: str                                     # resolved: "cpu" or "gpu"
    tolerance: Tolerance                            # the exercise's, for the device
    max_examples: int                               # examples a property check draws (the spec's)
    data: Path | None = None                        # the data folder used (the instructor's or the stand-ins')
    data_files: tuple[tuple[str, Path], ...] = ()   # the data files used, by name
    data_digest: str | None = None                  # the data folder's content
    file_digests: tuple[tuple[str, str], ...] = ()  # each data file's content, by name
    standins: tuple[str, ...] = ()                  # which of them are stand-ins ("data" and file names)
    public_only: bool = False                       # only the public checks (the student self-check)

    # Where things lie or came from, not what they are: their content is hashed (the digests).
    LOCATIONS: ClassVar[frozenset[str]] = frozenset({"exercise_root", "data", "data_files", "standins"})

    def canonical(self) -> str:
        """The settings as canonical JSON (sorted keys, no spaces), locations left out."""
        return json.dumps({f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in self.LOCATIONS},
                          sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """16 hex digits of the canonical JSON's SHA-256: the provenance's settings hash."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:16]

    def files(self) -> dict[str, Path]:
        return dict(self.data_files)

    def describe(self) -> str:
        """One line for reports: what a batch was graded with."""
        digests = dict(self.file_digests)
        data = ([f"data folder {self.data_digest}" + (" (stand-in)" if "data" in self.standins else "")]
                if self.data_digest else [])
        data += [f"{name} {digest}" + (" (stand-in)" if name in self.standins else "")
                 for name, digest in sorted(digests.items())]
        limits = " ".join(f"{f.name}={_number(getattr(self.limits, f.name))}" for f in fields(self.limits))
        parts = [f"exercise {self.exercise} (files {self.exercise_digest})", f"sandbox {self.sandbox}",
                 f"device {self.device}", f"rtol={_number(self.tolerance.rtol)} atol={_number(self.tolerance.atol)}",
                 f"max_examples={self.max_examples}", f"limits {limits}",
                 "data: " + (", ".join(data) if data else "none")]
        if self.public_only:
            parts.append("public checks only")
        return f"Settings {self.hash}: " + "; ".join(parts)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plain(value: Any) -> Any:
    """JSON-able and canonical: an integral float is written as an int (a limit of 60 and one of
    60.0, from spec.toml or from the command line, are one setting)."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- building (and validating) -------------------------------------------------------------------------
def build_settings(exercise: Exercise, *, sandbox: str = "bwrap", limits: Limits | None = None, device: str = "cpu",
                   data: Path | None = None, data_files: Mapping[str, Path] | None = None,
                   public_only: bool = False) -> RunSettings:
    """The settings of a run of `exercise`, validated: the sandbox is known and usable here, the
    device is resolved ("auto" -> what is there), every limit is a positive number, the data
    options name data the exercise reads and exist (the stand-ins of whatever is not given are
    made now, once); then the content digests are computed. Raises SettingsError."""
    try:
        sandboxes.check_available(sandbox)
        chosen = devices.resolve(device)
    except (sandboxes.SandboxUnavailable, devices.DeviceUnavailable) as exc:
        raise SettingsError(str(exc)) from None
    limits = limits or exercise.limits
    for f in fields(limits):  # the rule spec.toml's [limits] are held to, too
        value = getattr(limits, f.name)
        if problem := limit_problem(f.name, value):
            raise SettingsError(f"--{f.name.replace('_', '-')} {value}: must be {problem}")
    given = dict(data_files or {})
    if exercise.data is None:
        if data is not None or given:
            raise SettingsError(f"{exercise.name} reads no data (--data, --data-file, --weights)")
        folder, files = None, {}
    else:
        try:
            folder, files = exercise.data.resolve(data, given)
        except SpecError as exc:
            raise SettingsError(str(exc)) from None
    standins = (("data",) if folder is not None and data is None else ()) + tuple(sorted(set(files) - set(given)))
    return RunSettings(
        exercise=exercise.name, exercise_root=exercise.root.resolve(), exercise_digest=exercise_digest(exercise),
        sandbox=sandbox, limits=limits, device=chosen, tolerance=exercise.tolerance_for(chosen),
        max_examples=exercise.max_examples,
        data=folder.resolve() if folder is not None else None,
        data_files=tuple((name, path.resolve()) for name, path in sorted(files.items())),
        data_digest=content_digest(folder) if folder is not None else None,
        file_digests=tuple((name, content_digest(path)) for name, path in sorted(files.items())),
        standins=standins, public_only=public_only)


def on_this_machine(settings: RunSettings, exercise: Exercise) -> RunSettings:
    """The settings with data paths that exist here: a worker on another machine (Dask) makes the
    stand-ins that are missing, and refuses data whose content is not what the run was set up with."""
    missing = [name for name, path in (("data", settings.data), *settings.data_files)
               if path is not None and not path.exists()]
    if not missing:
        return settings
    if exercise.data is None or set(missing) - set(settings.standins):
        raise SettingsError(f"the run's data is not on this machine: {', '.join(missing)}")
    given = {name: path for name, path in settings.data_files if name not in settings.standins}
    folder, files = exercise.data.resolve(None if "data" in settings.standins else settings.data, given)
    here = replace(settings, data=folder, data_files=tuple(sorted(files.items())))
    if (content_digest(folder), tuple((n, content_digest(p)) for n, p in sorted(files.items()))) != \
            (settings.data_digest, settings.file_digests):
        raise SettingsError("the stand-ins made on this machine differ from the run's (another version of the "
                            "exercise's script?)")
    return here


def load_run_exercise(settings: RunSettings) -> Exercise:
    """The run's exercise, loaded in a worker: from its folder (or, on a machine where that folder
    is not, the bundled exercise of that name), refused unless its files are the run's."""
    root = settings.exercise_root
    exercise = load_exercise(str(root) if (root / "spec.toml").is_file() else settings.exercise)
    if exercise_digest(exercise) != settings.exercise_digest:
        raise SettingsError(f"the exercise {settings.exercise} on this machine ({exercise.root}) is not the one the "
                            "run was set up with (its files differ)")
    return exercise


# -- content digests -------------------------------------------------------------------------------------
def tree_digest(base: Path, files: Iterable[Path]) -> str:
    """16 hex digits of a hash of `files` by their path relative to `base` and their bytes."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(base).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def content_digest(*paths: Path) -> str:
    """A short hash of the regular files under `paths` by relative name and bytes (where they lie
    does not count: a copy of the same data is the same data); a path that is a file, by its bytes
    alone (a data file is placed under the spec's names, whatever the instructor's copy is called)."""
    h = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".complete")
        for f in files:
            h.update(str(f.relative_to(root) if f != root else "").encode() + b"\0" + f.read_bytes())
        h.update(b"\1")
    return h.hexdigest()[:16]


def exercise_digest(exercise: Exercise) -> str:
    """What defines the exercise's grading, by content: its folder's files (samples aside) and the
    reference modules its checks use."""
    root = exercise.root.resolve()
    own = [p for p in root.rglob("*") if p.is_file() and "samples" not in p.relative_to(root).parts
           and "__pycache__" not in p.parts]
    h = hashlib.sha256(tree_digest(root, own).encode())
    for path in reference_files(exercise):
        h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def reference_files(exercise: Exercise) -> list[Path]:
    """The files of the trusted reference package that the exercise's checks import."""
    import reference

    package = Path(reference.__file__).resolve().parent
    files = set()
    for value in vars(exercise.checks).values():
        module = value if isinstance(value, types.ModuleType) else sys.modules.get(getattr(value, "__module__", ""))
        path = Path(getattr(module, "__file__", None) or "/").resolve()
        if package in path.parents:
            files.add(path)
    return sorted(files)
