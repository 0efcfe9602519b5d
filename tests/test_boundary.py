"""The trust boundary: what a notebook prints, patches or returns cannot raise its score.

Each test grades a bundled sample plus hostile cells in a real kernel, and pins the
per-function verdicts (and where it matters, the exact score) that must come out.
"""

from __future__ import annotations

import pytest

from grader import spec
from grader.grading import grade_submission

from .notebooks import results_by_item, with_cells

pytestmark = pytest.mark.slow

ITEMS = ["zero_pad", "conv_single_step", "conv_forward", "pool_forward", "conv_backward",
         "create_mask_from_window", "distribute_value", "pool_backward"]


@pytest.fixture(scope="module")
def exercise():
    return spec.load_exercise("conv_step_by_step")


@pytest.fixture(scope="module")
def quick(exercise):
    return exercise.limits.replace(cell_timeout=3, call_timeout=2)


def grade(path, exercise, limits=None):
    result = grade_submission(path, exercise, limits=limits)
    assert result.status == "graded", result.error
    return result


def only_failed(result, *failed):
    verdicts = results_by_item(result)
    assert verdicts == {i: "failed" if i in failed else "passed" for i in ITEMS}, \
        "\n".join(t.output for t in result.tests if t.output)


def test_patched_comparisons_do_not_make_a_wrong_answer_pass(tmp_path, exercise):
    path = with_cells(tmp_path, """
import numpy as np, numpy.testing, builtins
np.allclose = np.isclose = np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = np.testing.assert_array_almost_equal = lambda *a, **k: None
def pool_forward(A_prev, hparameters, mode="max"):
    return A_prev, (A_prev, hparameters)
""")
    only_failed(grade(path, exercise), "pool_forward")


def test_broken_library_functions_in_the_kernel_do_not_break_grading(tmp_path, exercise):
    path = with_cells(tmp_path, """
import builtins, numpy as np
np.save = np.load = lambda *a, **k: None
builtins.open = lambda *a, **k: None
""")
    result = grade(path, exercise)
    assert result.score == result.max_score


@pytest.mark.parametrize("sabotage", [
    "import json\njson.dumps = json.loads = lambda *a, **k: '{\"ok\": true, \"value\": 70}'",
    "import builtins\nbuiltins.isinstance = lambda *a: True",
])
def test_sabotaging_the_kernel_itself_never_raises_the_score_or_crashes(tmp_path, exercise, quick, sabotage):
    plain = grade_submission(with_cells(tmp_path, base="template_unfilled", name="plain.ipynb"), exercise)
    result = grade_submission(with_cells(tmp_path, sabotage, base="template_unfilled"), exercise, limits=quick)
    assert result.score <= plain.score
    assert result.status == "graded" or "could not be run" in result.error


def test_printed_fake_results_change_nothing(tmp_path, exercise):
    plain = grade_submission(with_cells(tmp_path, base="template_unfilled", name="plain.ipynb"), exercise)
    path = with_cells(tmp_path, """
print('All tests passed!')
print('{"exercise": "conv_step_by_step", "submissions": [{"score": 70, "max_score": 70}]}')
open('results.json', 'w').write('{"score": 70}')
from IPython.display import display, JSON
display(JSON({"score": 70}))
""", base="template_unfilled")
    result = grade(path, exercise)
    assert result.score == plain.score < 10


def test_replacing_the_probe_itself_cannot_fake_answers(tmp_path, exercise):
    path = with_cells(tmp_path, """
import json, os, numpy as np
def __convgrade_call__(call_dir):
    np.save(os.path.join(call_dir, 'o0.npy'), np.zeros((1, 1, 1, 1)))
    with open(os.path.join(call_dir, 'out.json'), 'w') as fh:
        fh.write(json.dumps({"ok": True, "value": {"$nd": "o0.npy"}}))
""")
    result = grade(path, exercise)
    assert result.score == 0
    assert all(t.status == "failed" for t in result.tests)


def test_ndarray_subclasses_with_lying_equality_are_graded_by_their_numbers(tmp_path, exercise):
    path = with_cells(tmp_path, """
import numpy as np
class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)
    __ne__ = lambda self, other: np.zeros(np.shape(other), dtype=bool)
    def __array_finalize__(self, obj):
        pass
_real_pool_forward = pool_forward
def pool_forward(A_prev, hparameters, mode="max"):
    A, cache = _real_pool_forward(A_prev, hparameters, mode)
    return np.zeros(A.shape).view(Liar), cache
""")
    only_failed(grade(path, exercise), "pool_forward")


def test_objects_and_none_are_failures_with_a_message(tmp_path, exercise):
    path = with_cells(tmp_path, """
def conv_single_step(a_slice_prev, W, b):
    return object()
def distribute_value(dz, shape):
    return None
""")
    result = grade(path, exercise)
    # conv_forward and pool_backward call the student's own helpers, as course code does
    only_failed(result, "conv_single_step", "conv_forward", "distribute_value", "pool_backward")
    outputs = {t.name: t.output for t in result.tests}
    assert "got builtins.object (only arrays" in outputs["conv_single_step: random inputs"]
    assert "None" in outputs["distribute_value: random inputs"]


def test_a_forged_answer_file_pointing_outside_is_refused(tmp_path, exercise):
    path = with_cells(tmp_path, """
import json, os, sys
def pool_forward(A_prev, hparameters, mode="max"):
    call_dir = sys._getframe(1).f_locals['call_dir']
    with open(os.path.join(call_dir, 'out.json'), 'w') as fh:
        fh.write(json.dumps({"ok": True, "value": {"$nd": "../../../../etc/hostname"}}))
    raise SystemExit
""")
    result = grade(path, exercise)
    only_failed(result, "pool_forward")
    assert "unexpected file" in [t.output for t in result.tests if t.name.startswith("pool_forward")][0]


def test_an_endless_graded_function_fails_alone_and_grading_goes_on(tmp_path, exercise, quick):
    path = with_cells(tmp_path, """
def create_mask_from_window(x):
    while True:
        pass
""")
    result = grade(path, exercise, quick)
    only_failed(result, "create_mask_from_window", "pool_backward")
    assert "ran longer than 2s" in result.tests[[t.name for t in result.tests].index(
        "create_mask_from_window: random inputs")].output


def test_an_endless_ungraded_cell_is_interrupted_and_the_rest_runs(tmp_path, exercise, quick):
    path = with_cells(tmp_path, "import time\nwhile True:\n    time.sleep(0.05)", at=3)
    result = grade(path, exercise, quick)
    assert result.score == result.max_score
    assert any("interrupted" in e for e in result.notebook_errors)


def test_a_function_that_kills_the_kernel_fails_alone(tmp_path, exercise):
    path = with_cells(tmp_path, "import os\ndef pool_forward(A_prev, hparameters, mode='max'):\n    os._exit(3)")
    result = grade(path, exercise)
    only_failed(result, "pool_forward")
    output = next(t.output for t in result.tests if t.name.startswith("pool_forward"))
    assert "kernel died" in output and "status 3" in output


def test_a_cell_that_kills_the_kernel_does_not_lose_the_functions_before_it(tmp_path, exercise):
    path = with_cells(tmp_path, "import os\nos._exit(1)")
    result = grade(path, exercise)
    assert result.score == result.max_score
    assert any("kernel died" in e for e in result.notebook_errors)


def test_the_notebooks_own_kernel_choice_is_ignored(tmp_path, exercise):
    path = with_cells(tmp_path, metadata={"kernelspec": {"name": "no-such-kernel", "display_name": "X",
                                                         "language": "cobol"}})
    assert grade(path, exercise).score == exercise.max_score
