"""reference/cnn_arithmetic.py against independent oracles: Keras (shapes, count_params), torch's
FLOP counter (multiplications), keras.applications.MobileNetV2 (the bottleneck block), and the
lectures' published numbers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from grader.spec import load_exercise
from reference import cnn_arithmetic as ref

checks = load_exercise("cnn_arithmetic").checks   # its Keras oracles of shapes and counts
layers = ref.tf_keras.layers


def torch_multiplies(n_h: int, n_w: int, n_c_prev: int, f: int, n_c: int, pad: int = 0, stride: int = 1,
                     groups: int = 1) -> int:
    """Multiplications torch counts for one conv2d (its FLOP counter says 2 per multiply-add)."""
    x = torch.zeros(1, n_c_prev, n_h, n_w)
    w = torch.zeros(n_c, n_c_prev // groups, f, f)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.conv2d(x, w, stride=stride, padding=pad, groups=groups)
    return counter.get_total_flops() // 2


@st.composite
def geometry(draw):
    f, pad, stride = draw(st.integers(1, 7)), draw(st.integers(0, 3)), draw(st.integers(1, 4))
    low = max(1, f - 2 * pad)
    return draw(st.integers(low, 30)), draw(st.integers(low, 30)), f, pad, stride


def test_the_lectures_numbers():
    assert ref.conv_output_shape(6, 6, 3, 0, 1) == (4, 4)
    assert ref.conv_output_shape(7, 7, 3, 0, 2) == (3, 3)
    assert ref.same_padding(5) == 2
    assert ref.conv_params(3, 3, 10) == 280
    assert ref.conv_multiplies(28, 28, 192, 5, 32, pad=2) == 120_422_400
    assert ref.conv_multiplies(28, 28, 192, 1, 16) == 2_408_448
    assert ref.conv_multiplies(28, 28, 16, 5, 32, pad=2) == 10_035_200
    assert ref.depthwise_separable_multiplies(6, 6, 3, 3, 5) == {
        "normal": 2160, "depthwise": 432, "pointwise": 240, "total": 672}


@settings(max_examples=60, deadline=None)
@given(geometry())
def test_output_shape_is_keras_conv2d_after_zero_padding(g):
    assert ref.conv_output_shape(*g) == checks.keras_conv_output_shape(*g)
    n_h, n_w, f, pad, stride = g
    model = ref.tf_keras.Sequential([layers.Input(shape=(n_h, n_w, 1)), layers.ZeroPadding2D(pad),
                                     layers.Conv2D(1, f, strides=stride)])
    assert model.output_shape[1:3] == ref.conv_output_shape(*g)


@pytest.mark.parametrize("f", [1, 3, 5, 7, 9, 11])
def test_same_padding_is_keras_same(f):
    assert ref.same_padding(f) == checks.keras_same_padding(f)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 7), st.integers(1, 64), st.integers(1, 64))
def test_conv_params_is_keras_count_params(f, n_c_prev, n_c):
    assert ref.conv_params(f, n_c_prev, n_c) == checks.keras_conv_params(f, n_c_prev, n_c)
    model = ref.tf_keras.Sequential([layers.Input(shape=(f, f, n_c_prev)), layers.Conv2D(n_c, f)])
    assert model.count_params() == ref.conv_params(f, n_c_prev, n_c)


@settings(max_examples=40, deadline=None)
@given(geometry(), st.integers(1, 16), st.integers(1, 16))
def test_conv_multiplies_is_torchs_count(g, n_c_prev, n_c):
    n_h, n_w, f, pad, stride = g
    assert ref.conv_multiplies(n_h, n_w, n_c_prev, f, n_c, pad, stride) == \
        torch_multiplies(n_h, n_w, n_c_prev, f, n_c, pad, stride)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7).flatmap(lambda f: st.tuples(st.just(f), st.integers(f, 20), st.integers(f, 20))),
       st.integers(1, 16), st.integers(1, 16))
def test_depthwise_separable_is_torchs_depthwise_plus_pointwise(fhw, n_c_prev, n_c):
    f, n_h, n_w = fhw
    got = ref.depthwise_separable_multiplies(n_h, n_w, n_c_prev, f, n_c)
    depthwise = torch_multiplies(n_h, n_w, n_c_prev, f, n_c_prev, groups=n_c_prev)
    out_h, out_w = n_h - f + 1, n_w - f + 1
    assert got == {"normal": torch_multiplies(n_h, n_w, n_c_prev, f, n_c), "depthwise": depthwise,
                   "pointwise": torch_multiplies(out_h, out_w, n_c_prev, 1, n_c), "total": got["total"]}
    assert got["total"] == got["depthwise"] + got["pointwise"]
    # The lecture's ratio: cost(separable) / cost(normal) = 1/n_c + 1/f^2.
    assert got["total"] * n_c * f * f == got["normal"] * (f * f + n_c)


def test_inception_module_is_the_lectures():
    model = ref.block_model(ref.inception_module, (28, 28, 192))
    assert model.output_shape == (None, 28, 28, 256)
    by_hand = sum(ref.conv_params(f, c_in, c_out) for f, c_in, c_out in
                  ((1, 192, 64), (1, 192, 96), (3, 96, 128), (1, 192, 16), (5, 16, 32), (1, 192, 32)))
    assert model.count_params() == by_hand == 163_696


@pytest.mark.parametrize("block, in_channels, out_channels", [("block_2", 24, 24), ("block_10", 64, 96),
                                                                ("block_14", 160, 160)])
def test_bottleneck_matches_keras_applications_mobilenet_v2(block, in_channels, out_channels):
    """Per-layer classes and counts of MobileNetV2's own block (stride 1, expansion 6), in order."""
    full = ref.tf_keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None)
    theirs = [(type(layer).__name__, layer.count_params()) for layer in full.layers
              if layer.name.startswith(block + "_")]
    ours_model = ref.block_model(ref.mobilenet_v2_bottleneck, (12, 12, in_channels), out_channels=out_channels)
    ours = [(type(layer).__name__, layer.count_params()) for layer in ours_model.layers[1:]]
    assert ours == theirs
    assert any(c == "Add" for c, _ in ours) == (in_channels == out_channels)


def test_lenet5_table_is_keras_and_not_the_slide():
    model = ref.lenet5()
    by_name = {layer.name: layer for layer in model.layers}
    table = ref.lenet5_param_table()
    assert [row[0] for row in table] == ["INPUT", "CONV1", "POOL1", "CONV2", "POOL2", "FC3", "FC4", "SOFTMAX"]
    for name, shape, size, params in table[1:]:
        assert by_name[name].output_shape[1:] == shape
        assert by_name[name].count_params() == params
        if name in ref.LECTURE_PRINTED:
            assert params != ref.LECTURE_PRINTED[name]
    assert [row[3] for row in table if row[0] in ref.LECTURE_PRINTED] == [608, 3216, 48120, 10164, 850]
    assert sum(row[3] for row in table) == model.count_params() == 62_958
    assert [row[2] for row in table] == [3072, 6272, 1568, 1600, 400, 120, 84, 10]
