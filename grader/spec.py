"""An exercise is one folder: spec.toml (data) + checks.py (its checks) + files.

Loading it needs nothing exercise-specific in grader/: the folder says which
functions are graded, their points, tolerances, limits, the helper files the
notebook expects beside it, and the kernel-side prelude it needs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

EXERCISES_ENV = "CONVGRADE_EXERCISES"   # more exercise folders (os.pathsep-separated), after --exercises
CACHE_ENV = "CONVGRADE_CACHE"           # where stand-ins and the reference's scores are cached


def checkout() -> Path | None:
    """The source checkout the grader package lies in (an editable install's too), or None when
    it is installed (site-packages)."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "exercises").is_dir() else None


def bundled_exercises() -> Path:
    """The exercises that come with the grader: the checkout's exercises/, or the installed
    package convgrade_exercises (the same folder, shipped as package data)."""
    source = checkout()
    if source is not None:
        return source / "exercises"
    beside = Path(__file__).resolve().parent.parent / "convgrade_exercises"  # installed with this grader
    if beside.is_dir():
        return beside
    found = importlib.util.find_spec("convgrade_exercises")
    locations = list(found.submodule_search_locations or []) if found is not None else []
    return Path(locations[0]) if locations else beside


def exercise_dirs(extra: Sequence[Path] = (), environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where exercises are looked for, the first holding a name wins: `extra` (--exercises DIR),
    then $CONVGRADE_EXERCISES (os.pathsep-separated), then the bundled exercises."""
    listed = (environ if environ is not None else os.environ).get(EXERCISES_ENV, "")
    return (*extra, *(Path(p) for p in listed.split(os.pathsep) if p), bundled_exercises())


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where generated data is cached: $CONVGRADE_CACHE; else a checkout's .data-cache/; else the
    user's cache folder ($XDG_CACHE_HOME/convgrade, ~/.cache/convgrade)."""
    env = environ if environ is not None else os.environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    source = checkout()
    if source is not None:
        return source / ".data-cache"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "convgrade"


EXERCISES_DIR = bundled_exercises()
DATA_CACHE = cache_dir()   # generated stand-in datasets, the reference's training scores


class SpecError(Exception):
    """The exercise folder is incomplete or inconsistent (an instructor's error)."""


@dataclass(frozen=True)
class Limits:
    cell_timeout: float = 60.0        # seconds per notebook cell
    notebook_timeout: float = 600.0   # seconds for the whole notebook
    call_timeout: float = 20.0        # seconds per call of a graded function
    grading_timeout: float = 300.0    # seconds for all calls after the notebook ran
    train_timeout: float = 600.0      # seconds for one training of a model by the grader (model worker)
    max_result_mb: float = 64.0       # bytes a single call may return
    max_restarts: int = 8             # kernel restarts per submission before giving up
    memory_mb: int = 4096             # the whole sandbox (cgroup), and each process's address space
    processes: int = 256              # processes/threads of the whole sandbox
    file_size_mb: int = 256           # largest file the kernel may write
    disk_mb: int = 1024               # everything the sandbox writes, all files together (scratch tmpfs)
    output_mb: float = 64.0           # everything the kernel sends over Jupyter's channels in a session
    open_files: int = 1024
    cpu_seconds: int = 1800

    def replace(self, **overrides: Any) -> "Limits":
        known = {k: v for k, v in overrides.items() if v is not None}
        return Limits(**{**self.__dict__, **known})


@dataclass(frozen=True)
class Tolerance:
    rtol: float = 1e-5
    atol: float = 1e-7


@dataclass(frozen=True)
class Item:
    """A graded function (or model, or cell) and its points.

    `needs`: the names the notebook must define for it to be graded (default: the function
    itself; a graded top-level cell names the variables it sets).
    """

    name: str
    points: float
    needs: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        return self.needs or (self.name,)


@dataclass(frozen=True)
class DataFile:
    """One file the notebook reads (e.g. pretrained weights), and where the kernel finds it.

    `place`: paths relative to the notebook's folder, or "~/..." in the kernel's home (e.g.
    Keras's download cache, so that `weights='imagenet'` finds the file offline).
    """

    name: str                   # its key: `--data-file NAME=PATH` gives the instructor's copy
    standin: str                # its path in the stand-in folder that `make` writes
    place: tuple[str, ...]


@dataclass(frozen=True)
class DataSpec:
    """The data a notebook reads: a folder beside it (e.g. datasets/*.h5) and single files.

    Instructors point `--data DIR` at their copy of the folder and `--data-file NAME=PATH` at
    theirs of a file; whatever is not given comes from the stand-ins that `make`, a script of
    the exercise called with `--out ROOT`, writes once into the project's data cache: the folder
    as ROOT/<folder>, each file at ROOT/<its standin path>.
    """

    root: Path
    folder: str                 # its name next to the notebook, e.g. "datasets"
    make: str | None = None     # script in the exercise folder that writes the stand-ins
    files: tuple[DataFile, ...] = ()
    make_reads: tuple[str, ...] = ()  # files of the exercise folder the script reads (e.g. shipped weights)

    def resolve(self, override: Path | None = None,
                file_overrides: Mapping[str, Path] | None = None) -> tuple[Path, dict[str, Path]]:
        """The data folder and the files to use (instructor's copies first, stand-ins otherwise)."""
        file_overrides = dict(file_overrides or {})
        known = {f.name for f in self.files}
        unknown = sorted(set(file_overrides) - known)
        if unknown:
            raise SpecError(f"{self.root.name} reads no data file {', '.join(unknown)!r}"
                            + (f" (its files: {', '.join(sorted(known))})" if known else ""))
        for name, path in file_overrides.items():
            if not path.is_file():
                raise SpecError(f"--data-file {name}={path}: not a file")
        if override is not None and not override.is_dir():
            raise SpecError(f"--data {override}: not a folder")
        standin = None
        if override is None or known - set(file_overrides):
            standin = self._standins()
        folder = override if override is not None else standin / self.folder
        files = {f.name: file_overrides.get(f.name) or standin / f.standin for f in self.files}
        return folder, files

    def _standins(self) -> Path:
        """The stand-ins' folder in the data cache, named for the content of the script and of the
        files it reads (make_reads): a changed script or input makes them anew instead of leaving
        old files in use (a module the script imports is not part of the name)."""
        if not self.make:
            raise SpecError(f"{self.root.name} needs its data: pass --data DIR"
                            + "".join(f" --data-file {f.name}=FILE" for f in self.files))
        script = self.root / self.make
        digest = hashlib.sha256(script.read_bytes())
        for name in self.make_reads:  # without them (an install that left them out) the script pretrains
            path = self.root / name
            digest.update(b"\0" + name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"missing"))
        cache = DATA_CACHE / self.root.name / f"standin-{digest.hexdigest()[:12]}"
        if not (cache / ".complete").exists():
            import fcntl
            import shutil
            import subprocess
            import sys

            cache.parent.mkdir(parents=True, exist_ok=True)
            # One maker at a time (parallel test workers, batches started together): the others
            # wait, then find the folder complete. A folder a killed maker left half-made is redone.
            with open(cache.parent / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (cache / ".complete").exists():
                    shutil.rmtree(cache, ignore_errors=True)
                    cache.mkdir()
                    subprocess.run([sys.executable, str(script), "--out", str(cache)], check=True,
                                   stdout=subprocess.DEVNULL)
                    (cache / ".complete").touch()
        return cache


def _leaves_folder(relative: str) -> bool:
    """An absolute path, or one with a `..` part: it can name a file outside the folder it is read from."""
    return Path(relative).is_absolute() or ".." in Path(relative).parts


def _data_spec(root: Path, doc: dict[str, Any]) -> DataSpec:
    if "folder" not in doc:
        raise SpecError(f"{root}/spec.toml: [data] needs the folder's name (folder = \"...\")")
    for name, f in doc.get("files", {}).items():
        if not isinstance(f, dict) or set(f) != {"standin", "place"}:
            raise SpecError(f"{root}/spec.toml: [data.files.{name}] needs exactly standin and place")
    files = tuple(DataFile(name, str(f["standin"]), tuple(str(p) for p in f["place"]))
                  for name, f in doc.get("files", {}).items())
    make_reads = doc.get("make_reads", [])
    if not isinstance(make_reads, list) or not all(isinstance(n, str) for n in make_reads):
        raise SpecError(f"{root}/spec.toml: [data] make_reads must be a list of file names")
    for name in make_reads:
        if _leaves_folder(name):
            raise SpecError(f"{root}/spec.toml: [data] make_reads names a file outside the exercise folder: {name}")
    for f in files:
        for place in f.place:
            if _leaves_folder(place.removeprefix("~/")):
                raise SpecError(f"{root}/spec.toml: data file {f.name} placed outside the kernel's folders: {place}")
    return DataSpec(root, str(doc["folder"]), doc.get("make"), files, tuple(make_reads))


@dataclass(frozen=True)
class TrustedLayers:
    """Layer classes a published version's own helper file defines (e.g. the 2024 resnets_utils.py's
    BatchNormalization), which the grader rebuilds with its trusted implementation: `classes`
    named in a model description with module `module` are built from the exercise's file `file`
    (which defines each class under that name), never from the student's code."""

    file: Path
    module: str
    classes: tuple[str, ...]

    def allowlist(self) -> dict[str, str]:
        """class name -> the module a description must name for it (boundary.check_description)."""
        return {name: self.module for name in self.classes}


@dataclass(frozen=True)
class Version:
    """A published version of the assignment that the exercise grades besides its main one
    ([[versions.graded_variant]]): recognised from the notebook's code (every `recognised_by`
    pattern occurs, no `unless` pattern does), graded with its own helper files (overlaid on the
    exercise's), its checks (checks.py's VERSION_CHECKS[name], else CHECKS) and trusted layers."""

    name: str
    description: str
    recognised_by: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...] = ()
    helpers: Path | None = None
    trusted_layers: TrustedLayers | None = None

    def matches(self, code: str) -> bool:
        return all(p.search(code) for p in self.recognised_by) and not any(p.search(code) for p in self.unless)


@dataclass(frozen=True)
class Exercise:
    name: str
    root: Path
    title: str
    items: tuple[Item, ...]
    limits: Limits
    tolerance: Tolerance
    device_tolerance: dict[str, Tolerance]   # e.g. [tolerance.gpu]: looser where kernels differ
    prelude: tuple[str, ...]          # grader/kernel_side module names, or source of the exercise's .py files
    kernel_env: dict[str, str]        # extra environment of the kernel (e.g. TF_USE_LEGACY_KERAS)
    skip_cells: tuple[str, ...]       # regexes: code cells not run (e.g. the student's own training)
    kernel_preload: tuple[str, ...]   # modules every kernel imports: forked from a process that has them (fork_server.py)
    data: "DataSpec | None"
    helpers: Path | None
    template: Path | None
    max_examples: int
    requires_gpu: bool
    params: dict[str, Any]            # [params.*]: settings the exercise's checks read (e.g. training budget)
    recipes: Path | None              # model_recipes.py: the exercise builds students' models in the model worker
    graded_versions: str              # [versions] graded: the published versions it grades, in words
    other_versions: tuple             # [[versions.not_graded]]: (name, compiled pattern) of those it does not
    checks: ModuleType = field(repr=False, compare=False)
    version: str = ""                 # the version graded: [versions] name, or a graded variant's (as_version)
    variants: tuple[Version, ...] = ()   # [[versions.graded_variant]]: the other versions it grades
    helper_overlays: tuple[Path, ...] = ()   # the graded version's helper folders, copied over `helpers`
    trusted_layers: TrustedLayers | None = None   # the graded version's (as_version)

    def as_version(self, variant: Version) -> "Exercise":
        """This exercise as it grades `variant`: its name, helpers, trusted layers and checks."""
        return replace(self, version=variant.name, trusted_layers=variant.trusted_layers,
                       helper_overlays=(variant.helpers,) if variant.helpers is not None else ())

    def item_checks(self, item: str) -> list:
        """The checks of `item` for the version graded: checks.py's VERSION_CHECKS[version][item] if
        it has that version, else CHECKS[item]."""
        table = getattr(self.checks, "VERSION_CHECKS", {}).get(self.version) or self.checks.CHECKS
        return table[item]

    def tolerance_for(self, device: str) -> Tolerance:
        return self.device_tolerance.get(device, self.tolerance)

    @property
    def max_score(self) -> float:
        return sum(item.points for item in self.items)

    @property
    def samples(self) -> Path:
        return self.root / "samples"


def _dirs(exercises_dir: Path | Sequence[Path]) -> tuple[Path, ...]:
    return (exercises_dir,) if isinstance(exercises_dir, Path) else tuple(exercises_dir)


def available(exercises_dir: Path | Sequence[Path] = EXERCISES_DIR) -> list[str]:
    """Names of the exercise folders (those with a spec.toml) in `exercises_dir` (one folder, or
    several: see exercise_dirs)."""
    return sorted({p.parent.name for d in _dirs(exercises_dir) for p in d.glob("*/spec.toml")})


def find_exercise(name: str, exercises_dir: Path | Sequence[Path] = EXERCISES_DIR) -> Path:
    """The folder of exercise `name`: the first of `exercises_dir` that holds it (or `name` itself
    when it is a path, i.e. has a "/")."""
    if "/" in name:
        return Path(name)
    dirs = _dirs(exercises_dir)
    for folder in dirs:
        if (folder / name / "spec.toml").is_file():
            return folder / name
    where = " or ".join(str(d / name / "spec.toml") for d in dirs)
    raise SpecError(f"no exercise {name!r} (looked for {where}); available: {', '.join(available(dirs))}")


def demo_samples(name: str, exercises_dir: Path | Sequence[Path] = EXERCISES_DIR) -> list[Path]:
    """The samples `make demo` grades for exercise `name`: those whose entry in
    samples/expected.toml says `demo = true`, in name order; all of them when none does. (A first
    run's worth: the correct notebook and a mistake in every graded item, without the variants
    that would only add trainings.) Read without loading the exercise's checks."""
    samples = find_exercise(name, exercises_dir) / "samples"
    try:
        expected = tomllib.loads((samples / "expected.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{samples / 'expected.toml'}: {exc}") from None
    flags = {stem: entry.get("demo", False) for stem, entry in expected.items() if isinstance(entry, dict)}
    wrong = sorted(stem for stem, flag in flags.items() if not isinstance(flag, bool))
    if wrong:
        raise SpecError(f"{samples / 'expected.toml'}: demo must be true or false ({', '.join(wrong)})")
    chosen = {stem for stem, flag in flags.items() if flag}
    return sorted(p for p in samples.glob("*.ipynb") if not chosen or p.stem in chosen)


def load_exercise(name: str, exercises_dir: Path | Sequence[Path] = EXERCISES_DIR) -> Exercise:
    """Load exercises/<name>/ (or a path to an exercise folder); `exercises_dir`: where to look."""
    root = find_exercise(name, exercises_dir)
    spec_path = root / "spec.toml"
    if not spec_path.is_file():
        raise SpecError(f"no exercise {name!r} (looked for {spec_path})")
    try:
        doc = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{spec_path}: {exc}") from None
    _check_tables(spec_path, doc)
    meta = doc.get("exercise", {})
    items = _items(spec_path, doc.get("items", []))
    checks = _load_checks(root / meta.get("checks", "checks.py"), root.name)
    declared = getattr(checks, "CHECKS", None)
    _check_checks(root / meta.get("checks", "checks.py"), declared, items)
    tolerance, device_tolerance = _tolerances(spec_path, doc.get("tolerance", {}))
    from .checks import requirement_problems  # (imported here: checks.py imports this module)
    problems = requirement_problems([i.name for i in items], declared)
    if problems:
        raise SpecError(f"{root}/checks.py: a check's requires= is wrong: " + "; ".join(problems))
    helpers = root / meta["helpers"] if "helpers" in meta else None
    versions = doc.get("versions", {})
    variants = _variants(root, spec_path, versions.get("graded_variant", []))
    by_version = getattr(checks, "VERSION_CHECKS", {})
    if not isinstance(by_version, dict) or not set(by_version) <= {v.name for v in variants}:
        raise SpecError(f"{root}/checks.py: VERSION_CHECKS must be a dict keyed by the names of "
                        "[[versions.graded_variant]]")
    for table in by_version.values():
        _check_checks(root / meta.get("checks", "checks.py"), table, items)
        problems = requirement_problems([i.name for i in items], table)
        if problems:
            raise SpecError(f"{root}/checks.py: a check's requires= is wrong: " + "; ".join(problems))
    template = root / meta["template"] if "template" in meta else None
    return Exercise(
        name=root.name,
        root=root,
        title=str(meta.get("title", root.name)),
        items=items,
        limits=_limits(spec_path, doc.get("limits", {})),
        tolerance=tolerance,
        device_tolerance=device_tolerance,
        prelude=_prelude(spec_path, doc.get("kernel", {}).get("prelude", [])),
        kernel_env={str(k): str(v) for k, v in doc.get("kernel", {}).get("env", {}).items()},
        skip_cells=tuple(doc.get("kernel", {}).get("skip_cells", [])),
        kernel_preload=_preload(spec_path, doc.get("kernel", {}).get("preload", [])),
        data=_data_spec(root, doc["data"]) if "data" in doc else None,
        helpers=helpers,
        template=template,
        max_examples=_whole(spec_path, "[property] max_examples", doc.get("property", {}).get("max_examples", 30), 1),
        requires_gpu=_flag(spec_path, "[device] requires_gpu", doc.get("device", {}).get("requires_gpu", False)),
        params=dict(doc.get("params", {})),
        recipes=root / "model_recipes.py" if (root / "model_recipes.py").is_file() else None,
        graded_versions=str(doc.get("versions", {}).get("graded", "")),
        other_versions=_other_versions(spec_path, doc.get("versions", {}).get("not_graded", [])),
        checks=checks,
        version=str(versions.get("name", "")),
        variants=variants,
    )


def _patterns(spec_path: Path, label: str, value: object) -> tuple[re.Pattern[str], ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SpecError(f"{spec_path}: {label} must be a pattern or a list of patterns")
    try:
        return tuple(re.compile(v, re.MULTILINE) for v in values)
    except re.error as exc:
        raise SpecError(f"{spec_path}: {label}: not a valid pattern ({exc})") from None


_VARIANT_KEYS = frozenset({"name", "description", "recognised_by", "unless", "helpers", "trusted_layers"})


def _variants(root: Path, spec_path: Path, entries: object) -> tuple[Version, ...]:
    """[[versions.graded_variant]]: name, description, recognised_by (a pattern or list: all must
    occur in the notebook's code), unless (none may), helpers (a folder of the exercise, copied over
    its helpers), trusted_layers = {file, module, classes}."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SpecError(f"{spec_path}: [[versions.graded_variant]] must be tables")
    out: list[Version] = []
    for entry in entries:
        label = f"[[versions.graded_variant]] {entry.get('name', '?')}"
        extra = sorted(set(entry) - _VARIANT_KEYS)
        if extra:
            raise SpecError(f"{spec_path}: {label}: unknown key {', '.join(extra)} (known: {', '.join(sorted(_VARIANT_KEYS))})")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or "recognised_by" not in entry:
            raise SpecError(f"{spec_path}: {label} needs a name and recognised_by")
        helpers = None
        if "helpers" in entry:
            helpers = root / str(entry["helpers"])
            if not helpers.is_dir():
                raise SpecError(f"{spec_path}: {label}: helpers {entry['helpers']}: no such folder in the exercise")
        trusted = None
        if "trusted_layers" in entry:
            t = entry["trusted_layers"]
            if not (isinstance(t, dict) and set(t) == {"file", "module", "classes"} and isinstance(t["module"], str)
                    and isinstance(t["classes"], list) and all(isinstance(c, str) for c in t["classes"])
                    and (root / str(t["file"])).is_file()):
                raise SpecError(f"{spec_path}: {label}: trusted_layers needs exactly file (a file of the exercise), "
                                "module and classes")
            trusted = TrustedLayers(root / str(t["file"]), t["module"], tuple(t["classes"]))
        out.append(Version(name, str(entry.get("description", name)),
                           _patterns(spec_path, f"{label} recognised_by", entry["recognised_by"]),
                           _patterns(spec_path, f"{label} unless", entry.get("unless", [])), helpers, trusted))
    return tuple(out)


def _other_versions(spec_path: Path, entries: list) -> tuple:
    out = []
    for entry in entries:
        try:
            out.append((str(entry["name"]), re.compile(str(entry["recognised_by"]), re.MULTILINE)))
        except (KeyError, TypeError, re.error) as exc:
            raise SpecError(f"{spec_path}: [[versions.not_graded]] needs a name and a valid recognised_by "
                            f"pattern ({exc})") from None
    return tuple(out)


def _load_checks(path: Path, exercise: str) -> ModuleType:
    if not path.is_file():
        raise SpecError(f"missing {path}")
    spec = importlib.util.spec_from_file_location(f"convgrade_exercises.{exercise}.checks", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the instructor's checks.py: a SpecError naming it, not a traceback from deep inside
        raise SpecError(f"{path} could not be imported: {type(exc).__name__}: {exc}") from exc
    return module


# -- validation: an instructor's mistake is a SpecError naming the file, the key and the value -----------
# The tables of spec.toml and their keys (None: free-form, read by the exercise's checks; the
# tolerance's sub-tables are per device).
_TABLES: dict[str, frozenset[str] | None] = {
    "exercise": frozenset({"title", "checks", "helpers", "template"}),
    "items": frozenset({"name", "points", "needs"}),
    "limits": frozenset(f.name for f in fields(Limits)),
    "tolerance": frozenset({"rtol", "atol", "cpu", "gpu"}),
    "kernel": frozenset({"env", "prelude", "preload", "skip_cells"}),
    "data": frozenset({"folder", "make", "files", "make_reads"}),
    "property": frozenset({"max_examples"}),
    "device": frozenset({"requires_gpu"}),
    "params": None,
    "versions": frozenset({"graded", "name", "not_graded", "graded_variant"}),
}
LIMITS_MAY_BE_ZERO = frozenset({"max_restarts"})   # the limits that may be 0; the others are positive


def _check_tables(spec_path: Path, doc: dict[str, Any]) -> None:
    unknown = sorted(set(doc) - set(_TABLES))
    if unknown:
        raise SpecError(f"{spec_path}: unknown table {', '.join(unknown)} (known: {', '.join(_TABLES)})")
    for table, keys in _TABLES.items():
        if keys is None or table not in doc:
            continue
        entries = doc[table] if table == "items" else [doc[table]]
        label = "[[items]]" if table == "items" else f"[{table}]"
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SpecError(f"{spec_path}: {label} must be a table")
        for entry in entries:
            extra = sorted(set(entry) - keys)
            if extra:
                where = f" {entry['name']}" if table == "items" and "name" in entry else ""
                raise SpecError(f"{spec_path}: {label}{where}: unknown key {', '.join(extra)} "
                                f"(known: {', '.join(sorted(keys))})")


def _items(spec_path: Path, entries: list[dict[str, Any]]) -> tuple[Item, ...]:
    items: list[Item] = []
    for n, entry in enumerate(entries, 1):
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or ":" in name:
            raise SpecError(f"{spec_path}: [[items]] number {n} needs a name (a function or cell name, no ':')")
        if "points" not in entry:
            raise SpecError(f"{spec_path}: [[items]] {name} has no points")
        points = entry["points"]
        if (isinstance(points, bool) or not isinstance(points, int | float) or not math.isfinite(points)
                or points < 0 or abs(points * 100 - round(points * 100)) > 1e-6):
            raise SpecError(f"{spec_path}: [[items]] {name}: points must be a number >= 0 in whole hundredths, "
                            f"not {points!r}")
        if any(item.name == name for item in items):
            raise SpecError(f"{spec_path}: [[items]] {name} is named twice")
        needs = entry.get("needs", [])
        if not isinstance(needs, list) or not all(isinstance(x, str) for x in needs):
            raise SpecError(f"{spec_path}: [[items]] {name}: needs must be a list of names")
        items.append(Item(name, float(points), tuple(needs)))
    if not items:
        raise SpecError(f"{spec_path}: no [[items]]")
    return tuple(items)


def _check_checks(path: Path, declared: object, items: tuple[Item, ...]) -> None:
    """CHECKS: exactly the spec's items, each with checks of distinct aspects and positive weights."""
    from .checks import Check  # (imported here: checks.py imports this module)

    if not isinstance(declared, dict):
        raise SpecError(f"{path} must define CHECKS, a dict of each item's checks")
    names = [item.name for item in items]
    missing, extra = [n for n in names if n not in declared], sorted(set(declared) - set(names), key=str)
    if missing or extra:
        wrong = ([f"no checks for {', '.join(missing)}"] if missing else []) + \
            ([f"checks for {', '.join(map(str, extra))}, not an item of spec.toml"] if extra else [])
        raise SpecError(f"{path}: CHECKS must have exactly the items of spec.toml: {'; '.join(wrong)}")
    for name in names:
        checks = declared[name]
        if not isinstance(checks, list | tuple) or not checks or not all(isinstance(c, Check) for c in checks):
            raise SpecError(f"{path}: CHECKS[{name!r}] has no checks (a list of Check)")
        aspects = [c.aspect for c in checks]
        if len(set(aspects)) != len(aspects):
            raise SpecError(f"{path}: CHECKS[{name!r}] has two checks of one aspect: {aspects}")
        for c in checks:
            if isinstance(c.weight, bool) or not isinstance(c.weight, int | float) or not math.isfinite(c.weight) \
                    or c.weight <= 0:
                raise SpecError(f"{path}: {name}: {c.aspect}: weight must be a positive number, not {c.weight!r}")


def limit_problem(name: str, value: object) -> str | None:
    """What a limit must be, if `value` is not that: a positive number (a whole one where Limits'
    default is), >= 0 for max_restarts. The one rule for spec.toml's [limits] and the command line."""
    whole = isinstance(getattr(Limits(), name), int)
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0
            or (value == 0 and name not in LIMITS_MAY_BE_ZERO) or (whole and value != int(value))):
        return (("a whole number" if whole else "a number") + (" >= 0" if name in LIMITS_MAY_BE_ZERO else " > 0"))
    return None


def _limits(spec_path: Path, table: dict[str, Any]) -> Limits:
    for name, value in table.items():
        problem = limit_problem(name, value)
        if problem:
            raise SpecError(f"{spec_path}: [limits] {name} must be {problem}, not {value!r}")
    defaults = Limits()
    return Limits(**{name: type(getattr(defaults, name))(value) for name, value in table.items()})


def _tolerance(spec_path: Path, label: str, table: dict[str, Any]) -> Tolerance:
    for key, value in table.items():
        if key not in ("rtol", "atol"):
            raise SpecError(f"{spec_path}: {label}: unknown key {key} (known: atol, rtol)")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise SpecError(f"{spec_path}: {label} {key} must be a number >= 0, not {value!r}")
    return Tolerance(**{k: float(v) for k, v in table.items()})


def _tolerances(spec_path: Path, table: dict[str, Any]) -> tuple[Tolerance, dict[str, Tolerance]]:
    """[tolerance] (rtol, atol) and its per-device tables ([tolerance.gpu])."""
    devices = {k: v for k, v in table.items() if isinstance(v, dict)}
    for device in devices:
        if device not in ("cpu", "gpu"):
            raise SpecError(f"{spec_path}: [tolerance.{device}]: not a device (cpu, gpu)")
    return (_tolerance(spec_path, "[tolerance]", {k: v for k, v in table.items() if k not in devices}),
            {k: _tolerance(spec_path, f"[tolerance.{k}]", v) for k, v in devices.items()})


def _whole(spec_path: Path, label: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{spec_path}: {label} must be a whole number >= {minimum}, not {value!r}")
    return value


def _flag(spec_path: Path, label: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{spec_path}: {label} must be true or false, not {value!r}")
    return value


def _preload(spec_path: Path, entries: Any) -> tuple[str, ...]:
    """[kernel] preload: dotted module names (imported in the fork server, never run as code)."""
    if not isinstance(entries, list) or not all(
            isinstance(e, str) and all(part.isidentifier() for part in e.split(".")) for e in entries):
        raise SpecError(f"{spec_path}: [kernel] preload is a list of module names, e.g. [\"numpy\"]")
    return tuple(entries)


def _prelude(spec_path: Path, entries: list) -> tuple[str, ...]:
    """The kernel prelude: grader/kernel_side module names, or the source of the exercise's .py files."""
    out = []
    for entry in entries:
        if not isinstance(entry, str):
            raise SpecError(f"{spec_path}: [kernel] prelude entries are names or .py files, not {entry!r}")
        if entry.endswith(".py"):
            source = spec_path.parent / entry
            if not source.is_file():
                raise SpecError(f"{spec_path}: [kernel] prelude {entry}: no such file in the exercise folder")
            entry = source.read_text(encoding="utf-8")
        out.append(entry)
    return tuple(out)
