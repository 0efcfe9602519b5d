"""The boundary's parser: only well-formed plain data comes back, nothing else is trusted."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from grader import boundary


def answer(call_dir, doc, **arrays):
    (call_dir / "out.json").write_text(json.dumps(doc))
    for name, arr in arrays.items():
        np.save(call_dir / name, arr, allow_pickle=True)


def test_inputs_round_trip_as_npy_and_json(tmp_path):
    x = np.arange(6.0).reshape(2, 3)
    boundary.write_call(tmp_path, "f", (x, {"stride": 2, "pad": 1}, (x, 3)), {"mode": "max"})
    spec = json.loads((tmp_path / "call.json").read_text())
    assert spec["function"] == "f"
    assert spec["kwargs"] == {"mode": "max"}
    assert np.array_equal(np.load(tmp_path / spec["args"][0]["$nd"], allow_pickle=False), x)
    assert spec["args"][1] == {"$dict": [["stride", 2], ["pad", 1]]}


def test_nested_result_is_decoded_to_plain_values(tmp_path):
    answer(tmp_path, {"ok": True, "value": {"$tuple": [{"$nd": "o0.npy"}, {"$dict": [["pad", 1]]},
                                                       {"$npscalar": "o1.npy"}, None, [1.5, "x"]]}},
           **{"o0.npy": np.ones((2, 2)), "o1.npy": np.float64(3.0)})
    value = boundary.read_result(tmp_path, 1 << 20)
    assert isinstance(value, tuple) and len(value) == 5
    assert value[0].shape == (2, 2) and value[1] == {"pad": 1}
    assert value[2] == 3.0 and isinstance(value[2], np.float64)
    assert value[3] is None and value[4] == [1.5, "x"]


def test_a_raised_exception_comes_back_as_data(tmp_path):
    answer(tmp_path, {"ok": False, "error": {"type": "ValueError", "message": "bad shape", "traceback": "tb"}})
    err = boundary.read_result(tmp_path, 1 << 20)
    assert isinstance(err, boundary.StudentException) and str(err) == "ValueError: bad shape"


@pytest.mark.parametrize("name", ["../a0.npy", "/etc/passwd", "o0.npy/../../x", "a0.npy", "o1.pkl"])
def test_result_may_not_name_files_outside_its_outputs(tmp_path, name):
    answer(tmp_path, {"ok": True, "value": {"$nd": name}})
    with pytest.raises(boundary.ProbeError, match="unexpected file"):
        boundary.read_result(tmp_path, 1 << 20)


def test_pickled_object_arrays_are_refused(tmp_path):
    answer(tmp_path, {"ok": True, "value": {"$nd": "o0.npy"}}, **{"o0.npy": np.array([object()], dtype=object)})
    with pytest.raises(boundary.ProbeError, match="could not be read safely"):
        boundary.read_result(tmp_path, 1 << 20)


def test_symlinked_result_files_are_refused(tmp_path):
    secret = tmp_path.parent / "secret.npy"
    np.save(secret, np.ones(3))
    answer(tmp_path, {"ok": True, "value": {"$nd": "o0.npy"}})
    os.symlink(secret, tmp_path / "o0.npy")
    with pytest.raises(boundary.ProbeError, match="not a regular file"):
        boundary.read_result(tmp_path, 1 << 20)


def test_a_fifo_in_place_of_an_answer_is_refused_without_blocking(tmp_path):
    answer(tmp_path, {"ok": True, "value": {"$nd": "o0.npy"}})
    os.mkfifo(tmp_path / "o0.npy")
    done: list[Exception] = []
    reader = threading.Thread(target=lambda: _catch(done, lambda: boundary.read_result(tmp_path, 1 << 20)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading the answer blocked on a FIFO"
    assert len(done) == 1 and isinstance(done[0], boundary.ProbeError) and "not a regular file" in str(done[0])


def test_a_renamed_call_folder_is_still_read_where_it_was_made(tmp_path):
    """The kernel renames the call folder and puts a link to another folder in its place:
    the grader reads the folder it made (by descriptor), never the link's target."""
    made, elsewhere = tmp_path / "call", tmp_path / "elsewhere"
    made.mkdir()
    elsewhere.mkdir()
    answer(elsewhere, {"ok": True, "value": "from elsewhere"})
    with boundary.AnswerFolder(made) as folder:
        answer(made, {"ok": True, "value": "from the call"})
        made.rename(tmp_path / "moved")
        os.symlink(elsewhere, made)
        assert boundary.read_result(folder, 1 << 20) == "from the call"


@pytest.mark.parametrize("name, text", [("out.json", '{"ok": true, "value": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                                        ("o0.json", "[" * 100_000 + "]" * 100_000)])
def test_answers_nested_past_the_parsers_limit_are_refused(tmp_path, name, text):
    if name == "o0.json":
        answer(tmp_path, {"ok": True, "value": {"$keras_model": "o0.json"}})
    (tmp_path / name).write_text(text)
    with pytest.raises(boundary.ProbeError, match="nested too deeply"):
        boundary.read_result(tmp_path, 1 << 20)


def _catch(out: list, fn) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 (the test inspects it)
        out.append(exc)


def test_oversize_results_are_refused(tmp_path):
    answer(tmp_path, {"ok": True, "value": {"$nd": "o0.npy"}}, **{"o0.npy": np.zeros(100_000)})
    with pytest.raises(boundary.ProbeError, match="too large"):
        boundary.read_result(tmp_path, 10_000)


@pytest.mark.parametrize("doc", ["not json", "[]", '{"ok": true, "value": {"$eval": "1"}}',
                                 '{"ok": false, "error": "x"}'])
def test_malformed_answers_are_protocol_errors(tmp_path, doc):
    (tmp_path / "out.json").write_text(doc)
    with pytest.raises(boundary.ProbeError):
        boundary.read_result(tmp_path, 1 << 20)


def test_no_answer_is_a_protocol_error(tmp_path):
    with pytest.raises(boundary.ProbeError, match="did not return"):
        boundary.read_result(tmp_path, 1 << 20)


def test_a_batch_answers_each_call_in_order(tmp_path):
    boundary.write_batch(tmp_path, "f", [((np.ones(2),), {}), ((np.zeros(3),), {"k": 1})])
    spec = json.loads((tmp_path / "call.json").read_text())
    assert [c["kwargs"] for c in spec["batch"]] == [{}, {"k": 1}]
    assert spec["batch"][0]["args"][0]["$nd"] != spec["batch"][1]["args"][0]["$nd"]  # no file shared
    answer(tmp_path, {"batch": [{"ok": True, "value": {"$nd": "o0.npy"}},
                                {"ok": False, "error": {"type": "ValueError", "message": "m", "traceback": ""}}]},
           **{"o0.npy": np.ones(2)})
    first, second = boundary.read_batch(tmp_path, 2, 1 << 20)
    assert np.array_equal(first, np.ones(2)) and isinstance(second, boundary.StudentException)


def test_a_batch_answer_with_the_wrong_count_is_refused(tmp_path):
    answer(tmp_path, {"batch": [{"ok": True, "value": 1}]})
    with pytest.raises(boundary.ProbeError, match="wrong form"):
        boundary.read_batch(tmp_path, 2, 1 << 20)


def test_the_size_budget_covers_the_whole_batch(tmp_path):
    answer(tmp_path, {"batch": [{"ok": True, "value": {"$nd": f"o{i}.npy"}} for i in range(3)]},
           **{f"o{i}.npy": np.zeros(1000) for i in range(3)})
    with pytest.raises(boundary.ProbeError, match="too large"):
        boundary.read_batch(tmp_path, 3, 20_000)


def test_keyword_arguments_cross_with_their_structure(make_student):
    student = make_student({"f": lambda x, shape=None, hp=None: (x.sum(), shape, hp)})
    total, shape, hp = student.call("f", (np.ones(3),), {"shape": (2, 3), "hp": {"pad": np.int64(1)}})
    assert total == 3.0 and shape == (2, 3) and hp == {"pad": 1}
