"""grader/font_cache.py: matplotlib's font list built once, with an empty home, and given to kernels."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pytest

from grader import font_cache, spec
from grader.grading import grade_submission

from .notebooks import with_cells

DEJAVU = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


@pytest.fixture(autouse=True)
def fresh():
    font_cache._font_list.cache_clear()
    yield
    font_cache._font_list.cache_clear()


def listed(path: Path) -> list[str]:
    return [entry["fname"] for entry in json.loads(path.read_text())["ttflist"]]


def test_the_list_holds_matplotlibs_fonts_and_none_of_the_graders_home(tmp_path, monkeypatch):
    home = tmp_path / "grader-home"
    (home / ".fonts").mkdir(parents=True)
    shutil.copy(DEJAVU, home / ".fonts" / "GradersOwn.ttf")
    monkeypatch.setenv("HOME", str(home))
    found = font_cache.font_list(tmp_path / "cache")
    assert found is not None and found.parent.parent == tmp_path / "cache" / "matplotlib"
    names = listed(found)
    assert any(n.endswith("DejaVuSans.ttf") for n in names)
    assert not any("GradersOwn" in n or str(home) in n for n in names)


def test_built_once_then_found(tmp_path, monkeypatch):
    first = font_cache.font_list(tmp_path)
    font_cache._font_list.cache_clear()

    def no_build(*args, **kwargs):
        raise AssertionError("built again")
    monkeypatch.setattr(subprocess, "run", no_build)
    assert font_cache.font_list(tmp_path) == first


def test_no_list_when_it_cannot_be_built(tmp_path):
    assert font_cache.font_list(tmp_path, python=str(tmp_path / "no-python")) is None
    assert font_cache.font_list(tmp_path, python="/bin/false") is None
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert font_cache.font_list(blocked) is None


def test_give_to_kernel_copies_it_into_the_config_folder(tmp_path):
    (tmp_path / "home").mkdir()
    font_cache.give_to_kernel(tmp_path / "cache", tmp_path / "home" / ".matplotlib")
    copied = list((tmp_path / "home" / ".matplotlib").iterdir())
    assert [p.name for p in copied] == [font_cache.font_list(tmp_path / "cache").name]


def test_a_list_removed_while_grading_is_built_again_not_a_grader_error(tmp_path):
    """(red-team finding: the path was remembered per process, so clearing the cache mid-batch
    made every later submission of that process an internal grader error)"""
    font_cache.give_to_kernel(tmp_path / "cache", tmp_path / "one")
    shutil.rmtree(tmp_path / "cache" / "matplotlib")
    font_cache.give_to_kernel(tmp_path / "cache", tmp_path / "two")  # no list this time, no error
    font_cache.give_to_kernel(tmp_path / "cache", tmp_path / "three")
    assert [p.name for p in (tmp_path / "three").iterdir()] == [p.name for p in (tmp_path / "one").iterdir()]


# A first cell that fails the notebook's run if matplotlib lists the fonts again in the kernel.
REBUILD_PROBE = """
import logging
_messages = []
class _Keep(logging.Handler):
    def emit(self, record):
        _messages.append(record.getMessage())
_log = logging.getLogger("matplotlib.font_manager")
_log.addHandler(_Keep())
_log.setLevel(logging.INFO)
import matplotlib.pyplot
if "generated new fontManager" in _messages:
    raise RuntimeError("the kernel listed the fonts again")
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
@pytest.mark.parametrize("given, forked", [(True, False), (False, False), (True, True)],
                         ids=["new kernel", "new kernel without the list", "forked kernel"])
def test_a_sandboxed_kernel_reads_the_list_instead_of_listing_the_fonts(tmp_path, monkeypatch, given, forked):
    """A kernel started anew is given the list in its matplotlib folder; a forked one has
    matplotlib imported already, by the fork server, from the list in the data cache."""
    from grader import grading
    monkeypatch.setattr(spec, "DATA_CACHE", tmp_path / "cache")
    if not forked:
        monkeypatch.setattr(grading, "fork_server_for", lambda exercise, settings: None)
    if not given:  # the control: without the list, the probe sees the kernel build its own
        monkeypatch.setattr(font_cache, "give_to_kernel", lambda cache, folder: None)
    exercise = spec.load_exercise("conv_step_by_step")
    result = grade_submission(with_cells(tmp_path, REBUILD_PROBE, at=0), exercise, sandbox="bwrap")
    rebuilt = any("listed the fonts again" in e for e in result.notebook_errors)
    assert result.status == "graded" and rebuilt is not given, result.notebook_errors
