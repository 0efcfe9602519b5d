"""An exercise is one folder: spec.toml (data) + checks.py (its checks) + files.

Loading it needs nothing exercise-specific in grader/: the folder says which
functions are graded, their points, tolerances, limits, the helper files the
notebook expects beside it, and the kernel-side prelude it needs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

EXERCISES_DIR = Path(__file__).resolve().parent.parent / "exercises"
DATA_CACHE = Path(__file__).resolve().parent.parent / ".data-cache"   # generated stand-in datasets


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
        """The stand-ins' folder in the data cache, named for the script's content: a changed
        script makes them anew instead of leaving old files in use (a module the script imports
        is not part of the name)."""
        if not self.make:
            raise SpecError(f"{self.root.name} needs its data: pass --data DIR"
                            + "".join(f" --data-file {f.name}=FILE" for f in self.files))
        script = self.root / self.make
        cache = DATA_CACHE / self.root.name / f"standin-{hashlib.sha256(script.read_bytes()).hexdigest()[:12]}"
        if not (cache / ".complete").exists():
            import subprocess
            import sys

            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, str(script), "--out", str(cache)], check=True,
                           stdout=subprocess.DEVNULL)
            (cache / ".complete").touch()
        return cache


def _data_spec(root: Path, doc: dict[str, Any]) -> DataSpec:
    files = tuple(DataFile(name, str(f["standin"]), tuple(str(p) for p in f["place"]))
                  for name, f in doc.get("files", {}).items())
    for f in files:
        for place in f.place:
            if Path(place.removeprefix("~/")).is_absolute() or ".." in Path(place).parts:
                raise SpecError(f"{root}/spec.toml: data file {f.name} placed outside the kernel's folders: {place}")
    return DataSpec(root, str(doc["folder"]), doc.get("make"), files)


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

    def tolerance_for(self, device: str) -> Tolerance:
        return self.device_tolerance.get(device, self.tolerance)

    @property
    def max_score(self) -> float:
        return sum(item.points for item in self.items)

    @property
    def samples(self) -> Path:
        return self.root / "samples"


def available(exercises_dir: Path = EXERCISES_DIR) -> list[str]:
    """Names of the exercise folders (those with a spec.toml)."""
    return sorted(p.parent.name for p in exercises_dir.glob("*/spec.toml"))


def load_exercise(name: str, exercises_dir: Path = EXERCISES_DIR) -> Exercise:
    """Load exercises/<name>/ (or a path to an exercise folder)."""
    root = Path(name) if "/" in name else exercises_dir / name
    spec_path = root / "spec.toml"
    if not spec_path.is_file():
        raise SpecError(f"no exercise {name!r} (looked for {spec_path}); available: {', '.join(available(exercises_dir))}")
    try:
        doc = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{spec_path}: {exc}") from None
    meta = doc.get("exercise", {})
    items = tuple(Item(str(i["name"]), float(i["points"]), tuple(str(n) for n in i.get("needs", ())))
                  for i in doc.get("items", []))
    if not items:
        raise SpecError(f"{spec_path}: no [[items]]")
    checks = _load_checks(root / meta.get("checks", "checks.py"), root.name)
    declared = getattr(checks, "CHECKS", None)
    if not isinstance(declared, dict) or set(declared) != {i.name for i in items}:
        raise SpecError(f"{root}/checks.py must define CHECKS with exactly the items of spec.toml")
    helpers = root / meta["helpers"] if "helpers" in meta else None
    template = root / meta["template"] if "template" in meta else None
    return Exercise(
        name=root.name,
        root=root,
        title=str(meta.get("title", root.name)),
        items=items,
        limits=Limits(**doc.get("limits", {})),
        tolerance=Tolerance(**{k: v for k, v in doc.get("tolerance", {}).items() if not isinstance(v, dict)}),
        device_tolerance={k: Tolerance(**v) for k, v in doc.get("tolerance", {}).items() if isinstance(v, dict)},
        prelude=tuple((root / p).read_text(encoding="utf-8") if p.endswith(".py") else p
                      for p in doc.get("kernel", {}).get("prelude", [])),
        kernel_env={str(k): str(v) for k, v in doc.get("kernel", {}).get("env", {}).items()},
        skip_cells=tuple(doc.get("kernel", {}).get("skip_cells", [])),
        data=_data_spec(root, doc["data"]) if "data" in doc else None,
        helpers=helpers,
        template=template,
        max_examples=int(doc.get("property", {}).get("max_examples", 30)),
        requires_gpu=bool(doc.get("device", {}).get("requires_gpu", False)),
        params=dict(doc.get("params", {})),
        recipes=root / "model_recipes.py" if (root / "model_recipes.py").is_file() else None,
        graded_versions=str(doc.get("versions", {}).get("graded", "")),
        other_versions=_other_versions(spec_path, doc.get("versions", {}).get("not_graded", [])),
        checks=checks,
    )


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
    spec.loader.exec_module(module)
    return module
