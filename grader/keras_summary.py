"""The course's per-layer model summary (W2A1/W2A2 ``test_utils.summary``) and a readable diff of two.

``summary(model)`` returns, for every entry of ``model.layers``,
``[class_name, output_shape, count_params, *extras]`` with the course's extras (docs/course_facts.md §4.2):

============== =====================================================
Conv2D         padding, activation.__name__, kernel_initializer class name
MaxPooling2D   pool_size, strides, padding
Dropout        rate
ZeroPadding2D  padding
Dense          activation.__name__
============== =====================================================

Extras go by exact class, as the course's ``type(layer) == Conv2D`` does (a subclass gets none).
Unlike the course's function, this one does not compile the model (compiling changes no entry
and would mutate a model the grader loaded). It reads only the model's structure, so it is meant for
models the grader built or loaded itself (e.g. ``load_model(path, safe_mode=True)``), never for a
live object from a student's kernel.

Models are tf_keras (Keras 2) models: what ``tensorflow.keras`` is with ``TF_USE_LEGACY_KERAS=1``.
The values are plain Python data (str, int, None, tuples), so summaries can be stored and compared.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras  # noqa: E402
from tf_keras.layers import Conv2D, Dense, Dropout, MaxPooling2D, ZeroPadding2D  # noqa: E402

__all__ = ["summary", "first_difference", "FIELDS"]

Entry = list[Any]

_BASE_FIELDS = ("class", "output shape", "parameter count")
# Names of the extras after the three base fields, by layer class (docs/course_facts.md §4.2).
FIELDS: dict[str, tuple[str, ...]] = {
    "Conv2D": ("padding", "activation", "kernel initializer"),
    "MaxPooling2D": ("pool size", "strides", "padding"),
    "Dropout": ("rate",),
    "ZeroPadding2D": ("padding",),
    "Dense": ("activation",),
}


def _plain(value: Any) -> Any:
    """Tuples of plain ints (not numpy/TensorShape values) so entries compare and store as data."""
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if hasattr(value, "as_list"):  # TensorShape
        return tuple(value.as_list())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def summary(model: Any) -> list[Entry]:
    """The course's ``summary(model)`` list for a tf_keras model (see the module docstring)."""
    if not isinstance(model, tf_keras.Model):
        raise TypeError(
            f"summary() needs a tf_keras (Keras 2) model, got {type(model).__module__}.{type(model).__name__}; "
            "was TensorFlow imported before TF_USE_LEGACY_KERAS=1 was set?"
        )
    result: list[Entry] = []
    for layer in model.layers:
        entry: Entry = [layer.__class__.__name__, _plain(layer.output_shape), int(layer.count_params())]
        kind = type(layer)
        if kind is Conv2D:
            entry += [layer.padding, layer.activation.__name__, layer.kernel_initializer.__class__.__name__]
        elif kind is MaxPooling2D:
            entry += [_plain(layer.pool_size), _plain(layer.strides), layer.padding]
        elif kind is Dropout:
            entry.append(float(layer.rate))
        elif kind is ZeroPadding2D:
            entry.append(_plain(layer.padding))
        elif kind is Dense:
            entry.append(layer.activation.__name__)
        result.append(entry)
    return result


def _canonical(value: Any) -> Any:
    """Lists and tuples compare alike (a summary that went through JSON/TOML has only lists)."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _show(value: Any) -> str:
    """repr, but recursive so numpy scalars inside tuples print as plain numbers."""
    if isinstance(value, tuple):
        inner = ", ".join(_show(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return repr(value.item())
    return repr(value)


def _describe(entry: Sequence[Any]) -> str:
    return "[" + ", ".join(_show(v) for v in entry) + "]"


def _field_names(class_name: Any, n: int) -> list[str]:
    names = list(_BASE_FIELDS) + list(FIELDS.get(class_name, ()) if isinstance(class_name, str) else ())
    return names + [f"value {i}" for i in range(len(names), n)]


def _entry_difference(index: int, total: int, got: Sequence[Any], expected: Sequence[Any]) -> str | None:
    if _canonical(got) == _canonical(expected):
        return None
    where = f"layer {index} of {total}"
    exp_class = expected[0] if expected else None
    got_class = got[0] if got else None
    if got_class != exp_class:
        return (
            f"{where}: expected a {exp_class} layer, got {got_class} (a layer missing, extra or out of "
            f"order before this point?). Expected {_describe(expected)}, got {_describe(got)}"
        )
    names = _field_names(exp_class, max(len(got), len(expected)))
    parts = []
    for i, name in enumerate(names):
        e = _show(expected[i]) if i < len(expected) else "nothing"
        g = _show(got[i]) if i < len(got) else "nothing"
        if i >= len(expected) or i >= len(got) or _canonical(expected[i]) != _canonical(got[i]):
            parts.append(f"{name}: expected {e}, got {g}")
    return f"{where} ({exp_class}): " + "; ".join(parts)


def first_difference(got: Sequence[Sequence[Any]], expected: Sequence[Sequence[Any]]) -> str | None:
    """None when the two summaries are equal, else a message about the first differing layer.

    The message names the layer (0-based index into ``model.layers``, out of the expected count), its class and every field of it that differs
    (output shape, parameter count, padding, ...). When every common layer matches but the lengths
    differ, it says which layers are missing from or extra at the end. Lists and tuples compare
    alike. The course's comparator checks the length first; here a differing layer is reported
    first because it is the more helpful hint (a missing BatchNormalization shows up as the first
    layer whose class is off), and the length mismatch is added to the message.
    """
    total = len(expected)
    length_note = "" if len(got) == total else f" (the model has {len(got)} layers, expected {total})"
    for index, (g, e) in enumerate(zip(got, expected)):
        message = _entry_difference(index, total, g, e)
        if message is not None:
            return message + length_note
    if len(got) < total:
        missing = expected[len(got)]
        return (
            f"the model has {len(got)} layers, expected {total}: the first {len(got)} match; the next "
            f"expected layer, {len(got)}, is missing: {_describe(missing)}"
        )
    if len(got) > total:
        extra = got[total]
        return (
            f"the model has {len(got)} layers, expected {total}: the first {total} match; extra layer "
            f"{total}: {_describe(extra)}"
        )
    return None


def from_data(entries: Any) -> list[Entry]:
    """A summary that went through JSON (e.g. from the model worker) with its tuples back, so its
    feedback reads like one computed here: every list inside an entry was a tuple, except a
    multi-output layer's list of shapes."""
    def tupled(value: Any) -> Any:
        return tuple(tupled(v) for v in value) if isinstance(value, list) else value

    def shape(value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            return [tupled(v) for v in value]  # an InputLayer's (or a multi-output layer's) list of shapes
        return tupled(value)

    if not isinstance(entries, list):
        return []
    return [[shape(v) if i == 1 else tupled(v) for i, v in enumerate(entry)] if isinstance(entry, list) else entry
            for entry in entries]
