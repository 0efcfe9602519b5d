"""Layering rules, read from the source (ast): checks import no kernel internals, and the trust
boundary (grader/boundary.py) can be audited alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The kernel's machinery: the session, its notebook runner and call bridge, the code run inside
# the kernel, and the Jupyter libraries they drive. Checks reach a kernel only as a `Student`.
KERNEL_INTERNALS = ("grader.kernel", "grader.notebook_runner", "grader.call_bridge", "grader.kernel_side",
                    "nbclient", "jupyter_client", "jupyter_core", "ipykernel", "zmq")
CHECK_FILES = sorted([ROOT / "grader" / "checks.py", ROOT / "grader" / "keras_checks.py",
                      *(ROOT / "exercises").glob("*/checks.py")])


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports (at any depth of the file: functions too), as dotted names.

    `from X import a` counts as X and X.a (a may be a submodule); relative imports are resolved
    against the file's package (its folder under `root`); importlib.import_module("X") and __import__("X") count as X.
    """
    package = ".".join(path.relative_to(root).parent.parts)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            names.add(node.args[0].value)
    return names


def within(name: str, modules: tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def test_the_check_files_are_found():
    names = {str(p.relative_to(ROOT)) for p in CHECK_FILES}
    assert {"grader/checks.py", "grader/keras_checks.py", "exercises/conv_step_by_step/checks.py"} <= names
    assert len(names) >= 5


@pytest.mark.parametrize("path", CHECK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_checks_import_no_kernel_internals(path: Path):
    found = sorted(n for n in imported_modules(path) if within(n, KERNEL_INTERNALS))
    assert found == [], f"{path.relative_to(ROOT)} imports kernel internals: {found}"


def test_the_boundary_imports_no_other_grader_module_nor_the_kernel():
    """What crosses between grader and kernel is encoded and checked in boundary.py alone."""
    found = imported_modules(ROOT / "grader" / "boundary.py")
    assert sorted(n for n in found if within(n, ("grader", *KERNEL_INTERNALS))) == []


@pytest.mark.parametrize("source, expected", [
    ("from .kernel import KernelFault", {"grader.kernel", "grader.kernel.KernelFault"}),
    ("from . import kernel", {"grader", "grader.kernel"}),
    ("import grader.kernel as k", {"grader.kernel"}),
    ("def f():\n    import nbclient", {"nbclient"}),
    ("importlib.import_module('grader.call_bridge')", {"grader.call_bridge"}),
])
def test_imports_are_read_in_every_form(tmp_path: Path, source: str, expected: set[str]):
    folder = tmp_path / "grader"
    folder.mkdir()
    (folder / "checks.py").write_text(source)
    assert imported_modules(folder / "checks.py", tmp_path) == expected


SOURCE_FILES = sorted([*(ROOT / "grader").rglob("*.py"), *(ROOT / "reference").glob("*.py"),
                       *(ROOT / "exercises").glob("*/*.py"), ROOT / "grade.py"])


def redefined(path: Path) -> list[str]:
    """Names a module defines twice at its top level with def or class: the second silently
    replaces the first for every caller (one did: a new checks.remembered replaced the one
    keras_checks imports, and every ResNet50 model check errored)."""
    seen: dict[str, int] = {}
    twice = []
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name in seen:
                twice.append(f"{path.relative_to(ROOT)}: {node.name} (lines {seen[node.name]} and {node.lineno})")
            seen[node.name] = node.lineno
    return twice


def test_no_module_defines_a_function_or_class_twice():
    assert SOURCE_FILES and [t for p in SOURCE_FILES for t in redefined(p)] == []
