"""reference/resnet50.py and grader/keras_summary.py against independent oracles.

Oracles:

* The course's published facts (docs/course_facts.md §4): parameter counts (23,600,006 / 23,546,886 /
  53,120), 177 layers and their class counts, the first and last summary entries, the v1 2021
  block outputs on the course's fixed input, and a summary list generated here, entry by entry, from
  the written architecture description of §4.1 (shapes and parameter counts by formula).
* ``keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=6)``, both the
  tf_keras one and Keras 3's (a separate code base). What is truly comparable, and checked: total,
  trainable and non-trainable parameter counts (equal: the same bottleneck blocks with the stride on
  the first 1x1 convolution, the same conv biases, 4 BN weights per channel, the same Dense), the
  multiset of Conv2D specifications (kernel, strides, filters, input channels, padding, bias),
  the multiset of BatchNormalization sizes, the Dense layer, and the counts of Conv2D (53),
  BatchNormalization (53), Activation (49), Add (16), InputLayer and MaxPooling2D (1 each).
  What differs, on purpose, and is asserted as the only difference: keras.applications puts a second
  ZeroPadding2D(1) before its max pool (so its spatial sizes are 16/8/4/2, not the course's
  15/8/4/2) and ends with GlobalAveragePooling2D where the course has AveragePooling2D((2,2)) +
  Flatten; both happen to total 177 layers. Its BatchNormalization epsilon is 1.001e-5 (the course
  uses Keras' default 1e-3), which changes values, not counts. Conv bias is *not* a difference: both
  keep use_bias=True. Per-layer output shapes and the layer order are therefore not compared with it.
* torch (float64), for the block outputs on the course's input and on random inputs, using the
  kernels Keras initialized (seeded initializers are stateless, so a Model built from the same block
  call has the same weights as the eager call; that is asserted too).

Keras here is tf_keras (Keras 2), what ``tensorflow.keras`` is with TF_USE_LEGACY_KERAS=1; the
variable is set before TensorFlow is imported.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before anything imports tensorflow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import zlib  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tensorflow.python.framework.ops import EagerTensor  # noqa: E402
from tf_keras.initializers import constant, glorot_uniform, random_uniform  # noqa: E402

from reference import resnet50 as ref  # noqa: E402
from grader.keras_summary import first_difference, summary  # noqa: E402

COURSE_TOTAL, COURSE_TRAINABLE, COURSE_NON_TRAINABLE = 23_600_006, 23_546_886, 53_120
COURSE_CLASS_COUNTS = {
    "Conv2D": 53, "BatchNormalization": 53, "Activation": 49, "Add": 16, "InputLayer": 1,
    "ZeroPadding2D": 1, "MaxPooling2D": 1, "AveragePooling2D": 1, "Flatten": 1, "Dense": 1,
}


def course_input() -> np.ndarray:
    """The course's fixed test input (3, 4, 4, 3): ones * -1, ones * 1, ones * 3."""
    return np.concatenate([np.ones((1, 4, 4, 3)) * v for v in (-1, 1, 3)]).astype(np.float32)


def weight_counts(model) -> tuple[int, int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return model.count_params(), trainable, non_trainable


@pytest.fixture(scope="module")
def resnet():
    return ref.ResNet50(input_shape=(64, 64, 3), classes=6)


@pytest.fixture(scope="module")
def resnet_summary(resnet):
    return summary(resnet)


def test_tensorflow_keras_is_keras_2():
    # Course code imports tensorflow.keras; the grader's kernel and this reference must agree on it.
    assert tf.keras.layers.Conv2D is tf_keras.layers.Conv2D, (
        "tensorflow.keras is not tf_keras: TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set"
    )


# --------------------------------------------------------------------------- ResNet50 vs course facts


def test_parameter_counts_are_the_course_numbers(resnet):
    assert weight_counts(resnet) == (COURSE_TOTAL, COURSE_TRAINABLE, COURSE_NON_TRAINABLE)


def test_layer_counts_are_the_course_numbers(resnet, resnet_summary):
    assert len(resnet.layers) == len(resnet_summary) == 177
    assert Counter(entry[0] for entry in resnet_summary) == COURSE_CLASS_COUNTS


def test_summary_first_and_last_entries_are_the_course_ones(resnet_summary):
    assert resnet_summary[:3] == [
        ["InputLayer", [(None, 64, 64, 3)], 0],
        ["ZeroPadding2D", (None, 70, 70, 3), 0, ((3, 3), (3, 3))],
        ["Conv2D", (None, 32, 32, 64), 9472, "valid", "linear", "GlorotUniform"],
    ]
    assert resnet_summary[5] == ["MaxPooling2D", (None, 15, 15, 64), 0, (3, 3), (2, 2), "valid"]
    assert resnet_summary[-3:] == [
        ["AveragePooling2D", (None, 1, 1, 2048), 0],
        ["Flatten", (None, 2048), 0],
        ["Dense", (None, 6), 12294, "softmax"],
    ]


def course_summary_from_description(size: int = 64, channels: int = 3, classes: int = 6) -> list[list]:
    """The 177-entry summary written out from docs/course_facts.md §4.2, independently of Keras.

    Stage 1: ZeroPadding2D((3,3)), Conv2D(64, 7x7, s2, glorot), BN, ReLU, MaxPooling2D((3,3), s2).
    Stages 2-5: a convolutional block (glorot; order conv1 bn relu conv2 bn relu conv3 conv_shortcut
    bn bn add relu) then identity blocks (random_uniform; conv bn relu conv bn relu conv bn add relu).
    Conv2D parameters: k*k*c_in*c_out + c_out (bias); BN: 4 per channel (2 trainable, 2 moving).
    """
    rows: list[list] = [["InputLayer", [(None, size, size, channels)], 0]]

    def conv(h, c_in, c_out, k, padding, init):
        rows.append(["Conv2D", (None, h, h, c_out), k * k * c_in * c_out + c_out, padding, "linear", init])

    def bn(h, c):
        rows.append(["BatchNormalization", (None, h, h, c), 4 * c])

    def act(h, c):
        rows.append(["Activation", (None, h, h, c), 0])

    def add(h, c):
        rows.append(["Add", (None, h, h, c), 0])

    h = size + 6
    rows.append(["ZeroPadding2D", (None, h, h, channels), 0, ((3, 3), (3, 3))])
    h = (h - 7) // 2 + 1
    conv(h, channels, 64, 7, "valid", "GlorotUniform")
    bn(h, 64)
    act(h, 64)
    h = (h - 3) // 2 + 1
    rows.append(["MaxPooling2D", (None, h, h, 64), 0, (3, 3), (2, 2), "valid"])
    c = 64
    stages = [((64, 64, 256), 1, 2), ((128, 128, 512), 2, 3), ((256, 256, 1024), 2, 5), ((512, 512, 2048), 2, 2)]
    for (f1, f2, f3), s, n_identity in stages:
        h = (h - 1) // s + 1  # 1x1 'valid' convolution with stride s
        for init, c_in, shortcut in [("GlorotUniform", c, True)] + [("RandomUniform", f3, False)] * n_identity:
            conv(h, c_in, f1, 1, "valid", init)
            bn(h, f1)
            act(h, f1)
            conv(h, f1, f2, 3, "same", init)
            bn(h, f2)
            act(h, f2)
            conv(h, f2, f3, 1, "valid", init)
            if shortcut:
                conv(h, c_in, f3, 1, "valid", init)
                bn(h, f3)
            bn(h, f3)
            add(h, f3)
            act(h, f3)
        c = f3
    h //= 2
    rows.append(["AveragePooling2D", (None, h, h, c), 0])
    rows.append(["Flatten", (None, h * h * c), 0])
    rows.append(["Dense", (None, classes), h * h * c * classes + classes, "softmax"])
    return rows


def test_summary_matches_the_written_architecture_entry_by_entry(resnet_summary):
    expected = course_summary_from_description()
    assert len(expected) == 177
    assert sum(row[2] for row in expected) == COURSE_TOTAL  # the description itself adds up
    assert first_difference(resnet_summary, expected) is None
    assert resnet_summary == expected


# --------------------------------------------------------------------------- ResNet50 vs keras.applications


def _applications(flavour: str):
    if flavour == "tf_keras":
        return tf_keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=6)
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3."):
        pytest.skip(f"keras {keras3.__version__} is not Keras 3")
    return keras3.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=6)


def _conv_specs(model) -> Counter:
    return Counter(
        (tuple(l.kernel_size), tuple(l.strides), l.filters, int(l.kernel.shape[2]), l.padding.lower(), l.use_bias)
        for l in model.layers if l.__class__.__name__ == "Conv2D"
    )


def _bn_sizes(model) -> Counter:
    return Counter(l.count_params() for l in model.layers if l.__class__.__name__ == "BatchNormalization")


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_keras_applications_resnet50_agrees_where_comparable(resnet, flavour):
    app = _applications(flavour)
    assert weight_counts(app) == weight_counts(resnet) == (COURSE_TOTAL, COURSE_TRAINABLE, COURSE_NON_TRAINABLE)
    assert len(app.layers) == len(resnet.layers) == 177  # a coincidence of the two differences below

    ours = Counter(l.__class__.__name__ for l in resnet.layers)
    theirs = Counter(l.__class__.__name__ for l in app.layers)
    for name in ("Conv2D", "BatchNormalization", "Activation", "Add", "InputLayer", "MaxPooling2D", "Dense"):
        assert ours[name] == theirs[name], name
    # The documented architectural differences, and nothing else:
    assert ours - theirs == Counter({"AveragePooling2D": 1, "Flatten": 1})
    assert theirs - ours == Counter({"ZeroPadding2D": 1, "GlobalAveragePooling2D": 1})

    assert _conv_specs(app) == _conv_specs(resnet)
    assert _bn_sizes(app) == _bn_sizes(resnet)
    (dense_app,), (dense_ours,) = ([l for l in m.layers if l.__class__.__name__ == "Dense"] for m in (app, resnet))
    assert (dense_app.units, dense_app.activation.__name__, dense_app.count_params()) == (6, "softmax", 12294)
    assert (dense_ours.units, dense_ours.activation.__name__, dense_ours.count_params()) == (6, "softmax", 12294)


# --------------------------------------------------------------------------- blocks vs the course's numbers

# The course's v1 2021 expected values (docs/course_facts.md §4.2) are decimal literals copied from printed
# float32 output. On TF 2.21 / tf_keras 2.21 the results differ from them by at most 2 float32 ULPs
# (e.g. 578.13715 vs 578.1371, 96.85618 vs 96.85619, i.e. <= 1.6e-7 relative): the convolutions here
# add their equal terms in another order than the course's build did. A float32 simulation of this
# block (x * 1/sqrt(1.001) per BatchNormalization) reproduces all six TF 2.21 values exactly with
# sequential accumulation in the convolutions, and the course's three values for the x = 3 example
# exactly with pairwise accumulation; it is not the oneDNN switch (TF_ENABLE_ONEDNN_OPTS=0 gives the
# same numbers). rtol=1e-6 (~8 float32 ULPs) covers that and the literals' rounding to 8 significant
# digits, and is 10x stricter than the course's own np.allclose(atol=1e-5, rtol=1e-5); atol=1e-6 is
# for the exact zeros.
COURSE_RTOL = COURSE_ATOL = 1e-6


def _resume(A) -> np.ndarray:
    return A.numpy()[:, (0, -1), :, :].mean(axis=3)


def test_identity_block_course_values_training_false():
    A3 = ref.identity_block(course_input(), f=2, filters=[4, 4, 3],
                            initializer=lambda seed=0: constant(value=1), training=False)
    A3np = A3.numpy()
    assert A3np.shape == (3, 4, 4, 3)
    assert np.all(A3np >= 0)
    resume = _resume(A3)
    # The course's own structural asserts (padding/stride and "BatchNormalization missing" checks).
    assert np.floor(resume[1, 0, 0]) == 2 * np.floor(resume[1, 0, 3])
    assert np.floor(resume[1, 0, 3]) == np.floor(resume[1, 1, 0])
    assert np.floor(resume[1, 1, 0]) == 2 * np.floor(resume[1, 1, 3])
    assert resume[1, 1, 0] - np.floor(resume[1, 1, 0]) > 0.7
    expected = np.array([
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        [[192.71236, 192.71236, 192.71236, 96.85619], [96.85619, 96.85619, 96.85619, 48.9281]],
        [[578.1371, 578.1371, 578.1371, 290.56854], [290.56854, 290.56854, 290.56854, 146.78427]],
    ])
    np.testing.assert_allclose(resume, expected, rtol=COURSE_RTOL, atol=COURSE_ATOL)
    # In exact arithmetic every value is x * (192 k^3 + 1) scaled by the edge factor, k = 1/sqrt(1.001)
    # (three BatchNormalizations in inference mode, moving variance 1, epsilon 1e-3).
    k = 1 / np.sqrt(1.001)
    exact = np.array([[[192, 192, 192, 96], [96, 96, 96, 48]]]) * k**3 + 1
    np.testing.assert_allclose(resume[1:], exact * np.array([1, 3])[:, None, None], rtol=5e-7)


def test_identity_block_course_values_training_true():
    A4 = ref.identity_block(course_input(), f=3, filters=[3, 3, 3],
                            initializer=lambda seed=7: constant(value=1), training=True)
    row2 = [3.2379014, 4.1394243, 4.1394243, 3.2379014]
    expected = np.array([np.zeros((2, 4)), np.full((2, 4), 0.37394285), [row2, row2]])
    np.testing.assert_allclose(_resume(A4), expected, rtol=COURSE_RTOL, atol=COURSE_ATOL)


def test_identity_block_course_print_cell_values():
    # The notebook's own print cell: f=2, filters [3, 3, 3], training=True (printed with 5 decimals).
    A = ref.identity_block(course_input(), f=2, filters=[3, 3, 3],
                           initializer=lambda seed=0: constant(value=1), training=True)
    expected = np.array([
        np.zeros((2, 4)),
        np.full((2, 4), 0.40739),
        [[4.99991, 4.99991, 4.99991, 3.25948], [3.25948, 3.25948, 3.25948, 2.40739]],
    ])
    np.testing.assert_allclose(_resume(A), expected, atol=5e-6)  # half a unit of the 5th decimal


def test_convolutional_block_course_values():
    A = ref.convolutional_block(course_input(), f=2, filters=[2, 4, 6], training=False)
    assert type(A) is EagerTensor
    assert tuple(A.shape) == (3, 2, 2, 6)
    expected0 = np.array([
        [[0, 0.66683817, 0, 0, 0.888539, 0.5274254], [0, 0.65053666, 0, 0, 0.8959285, 0.49965227]],
        [[0, 0.6312079, 0, 0, 0.86362475, 0.47643146], [0, 0.56883204, 0, 0, 0.8553412, 0.417093]],
    ])
    np.testing.assert_allclose(A.numpy()[0], expected0, rtol=COURSE_RTOL, atol=COURSE_ATOL)
    B = ref.convolutional_block(course_input(), f=2, filters=[2, 4, 6], training=True)
    assert tuple(B.shape) == (3, 2, 2, 6)


@pytest.mark.parametrize(("s", "shape"), [(2, (3, 2, 2, 6)), (4, (3, 1, 1, 6)), (1, (3, 4, 4, 6)), (3, (3, 2, 2, 6))])
def test_convolutional_block_shapes(s, shape):
    assert tuple(ref.convolutional_block(course_input(), f=2, filters=[2, 4, 6], s=s).shape) == shape


# --------------------------------------------------------------------------- blocks vs torch


def _torch_block(X, kernels, f, s, training, identity):
    """The course's block in torch float64 from Keras' (kernel, bias) pairs; fresh BatchNormalization
    (gamma 1, beta 0, moving mean 0, moving variance 1, epsilon 1e-3): batch statistics (biased
    variance) when training, else x / sqrt(1 + 1e-3)."""
    def conv(x, kernel, bias, stride=1, same=False):
        w = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64)
        if same:  # TensorFlow's 'same' (stride 1): the extra row/column of padding goes bottom/right
            total = w.shape[-1] - 1
            x = F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
        return F.conv2d(x, w, torch.tensor(bias, dtype=torch.float64), stride=stride)

    def bn(x):
        c = x.shape[1]
        return F.batch_norm(x, torch.zeros(c, dtype=x.dtype), torch.ones(c, dtype=x.dtype),
                            torch.ones(c, dtype=x.dtype), torch.zeros(c, dtype=x.dtype),
                            training=training, eps=1e-3)

    x = torch.tensor(X.transpose(0, 3, 1, 2), dtype=torch.float64)
    (k1, b1), (k2, b2), (k3, b3), *shortcut = kernels
    y = F.relu(bn(conv(x, k1, b1, stride=s)))
    y = F.relu(bn(conv(y, k2, b2, same=True)))
    y = bn(conv(y, k3, b3))
    if identity:
        assert not shortcut
        short = x
    else:
        (ks, bs), = shortcut
        short = bn(conv(x, ks, bs, stride=s))
    return F.relu(y + short).numpy().transpose(0, 2, 3, 1)


def _keras_block_with_weights(X, f, filters, s, training, identity, initializer):
    """The block's eager output, and (kernel, bias) of each convolution of an identical Model."""
    kwargs = {"training": training} if initializer is None else {"training": training, "initializer": initializer}
    if identity:
        eager = ref.identity_block(X, f, filters, **kwargs)
        inp = tf_keras.Input(X.shape[1:])
        model = tf_keras.Model(inp, ref.identity_block(inp, f, filters, **kwargs))
    else:
        eager = ref.convolutional_block(X, f, filters, s=s, **kwargs)
        inp = tf_keras.Input(X.shape[1:])
        model = tf_keras.Model(inp, ref.convolutional_block(inp, f, filters, s=s, **kwargs))
    for layer in model.layers:  # fresh BatchNormalization, as _torch_block assumes
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            assert np.all(gamma == 1) and np.all(beta == 0) and np.all(mean == 0) and np.all(var == 1)
            assert layer.epsilon == 1e-3
    kernels = [l.get_weights() for l in model.layers if l.__class__.__name__ == "Conv2D"]
    # (Calling the model with training=True updates its moving statistics, hence after the reads.)
    np.testing.assert_array_equal(model(X).numpy(), eager.numpy())  # seeded initializers: same weights
    return eager.numpy(), kernels


BLOCK_CASES = [
    # (identity?, input shape, f, filters, s, initializer)
    (True, (3, 4, 4, 3), 2, [4, 4, 3], 1, lambda seed=0: constant(value=1)),
    (True, (3, 4, 4, 3), 3, [3, 3, 3], 1, None),
    (True, (2, 5, 6, 4), 2, [3, 5, 4], 1, None),
    (True, (4, 7, 5, 6), 3, [2, 3, 6], 1, glorot_uniform),
    (False, (3, 4, 4, 3), 2, [2, 4, 6], 2, None),
    (False, (3, 4, 4, 3), 2, [2, 4, 6], 4, None),
    (False, (2, 7, 6, 3), 3, [4, 2, 5], 3, None),
    (False, (4, 6, 6, 2), 3, [3, 3, 4], 1, random_uniform),
]


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: f"{'identity' if c[0] else 'conv'}-{c[1]}-f{c[2]}-s{c[4]}")
def test_blocks_match_torch(case, training):
    identity, shape, f, filters, s, initializer = case
    rng = np.random.default_rng(zlib.crc32(repr((identity, shape, f, s, training)).encode()))
    inputs = [course_input()] if shape == (3, 4, 4, 3) else []
    inputs.append(rng.normal(size=shape).astype(np.float32))
    for X in inputs:
        got, kernels = _keras_block_with_weights(X, f, filters, s, training, identity, initializer)
        expected = _torch_block(X.astype(np.float64), kernels, f, s, training, identity)
        # float32 Keras vs float64 torch: float32 roundings through three convolutions of <= 3*3*6
        # terms and three normalizations (batch statistics of small batches amplify them a little).
        # Measured worst: 5.2e-7 of the output's scale; 2e-5 leaves a 40x margin while any structural
        # slip (a missing BN, wrong padding side or stride, wrong Add) is O(1).
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * scale)


# --------------------------------------------------------------------------- summary and first_difference


def mini_resnet(s: int = 2, size: int = 32) -> tf_keras.Model:
    """A small model with the course's stage-1 layers and one of each block, for fast summary tests."""
    X_input = tf_keras.Input((size, size, 3))
    X = tf_keras.layers.ZeroPadding2D((3, 3))(X_input)
    X = tf_keras.layers.Conv2D(8, (7, 7), strides=(2, 2), kernel_initializer=glorot_uniform(seed=0))(X)
    X = tf_keras.layers.BatchNormalization(axis=3)(X)
    X = tf_keras.layers.Activation("relu")(X)
    X = tf_keras.layers.MaxPooling2D((3, 3), strides=(2, 2))(X)
    X = ref.convolutional_block(X, f=3, filters=[4, 4, 16], s=s)
    X = ref.identity_block(X, 3, [4, 4, 16])
    X = tf_keras.layers.AveragePooling2D((2, 2))(X)
    X = tf_keras.layers.Flatten()(X)
    X = tf_keras.layers.Dense(6, activation="softmax", kernel_initializer=glorot_uniform(seed=0))(X)
    return tf_keras.Model(X_input, X)


def _layer_config(config: dict, name: str) -> dict:
    (layer,) = [l for l in config["layers"] if l["name"] == name]
    return layer


def with_layer_changed(model, index: int, **changes) -> tf_keras.Model:
    """A copy of the model (from its config) with layer `index`'s config updated."""
    config = model.get_config()
    _layer_config(config, model.layers[index].name)["config"].update(changes)
    return tf_keras.Model.from_config(config)


def without_layer(model, index: int) -> tf_keras.Model:
    """A copy of the model with single-input layer `index` removed and its consumers rewired to its input."""
    config = model.get_config()
    name = model.layers[index].name
    removed = _layer_config(config, name)
    ((source, node, tensor, _),) = removed["inbound_nodes"][0]
    config["layers"].remove(removed)
    for layer in config["layers"]:
        for inbound in layer["inbound_nodes"]:
            for i, (src, *rest) in enumerate(inbound):
                if src == name:
                    inbound[i] = [source, node, tensor, rest[-1]]
    return tf_keras.Model.from_config(config)


def _index(entries, predicate, nth: int = 0) -> int:
    return [i for i, e in enumerate(entries) if predicate(e)][nth]


@pytest.fixture(scope="module")
def mini():
    return mini_resnet()


@pytest.fixture(scope="module")
def mini_summary(mini):
    return summary(mini)


def test_summary_entries_have_the_course_format(mini_summary):
    assert mini_summary[0] == ["InputLayer", [(None, 32, 32, 3)], 0]
    assert mini_summary[1] == ["ZeroPadding2D", (None, 38, 38, 3), 0, ((3, 3), (3, 3))]
    assert mini_summary[2] == ["Conv2D", (None, 16, 16, 8), 7 * 7 * 3 * 8 + 8, "valid", "linear", "GlorotUniform"]
    assert mini_summary[5] == ["MaxPooling2D", (None, 7, 7, 8), 0, (3, 3), (2, 2), "valid"]
    assert mini_summary[-1] == ["Dense", (None, 6), 2 * 2 * 16 * 6 + 6, "softmax"]

    def plain(value):  # str, int, float, None and tuples/lists of them: storable, comparable data
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float)

    assert plain(mini_summary)


def test_summary_dropout_entry_and_plain_values():
    inp = tf_keras.Input((8, 8, 1))
    x = tf_keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inp)
    x = tf_keras.layers.Dropout(0.25)(x)
    x = tf_keras.layers.Flatten()(x)
    model = tf_keras.Model(inp, tf_keras.layers.Dense(1, activation="sigmoid")(x))
    assert summary(model) == [
        ["InputLayer", [(None, 8, 8, 1)], 0],
        ["Conv2D", (None, 8, 8, 2), 20, "same", "relu", "GlorotUniform"],
        ["Dropout", (None, 8, 8, 2), 0, 0.25],
        ["Flatten", (None, 128), 0],
        ["Dense", (None, 1), 129, "sigmoid"],
    ]


def test_summary_refuses_non_keras_2_objects():
    with pytest.raises(TypeError, match="tf_keras"):
        summary(object())


def test_summary_survives_a_safe_keras_file_round_trip(tmp_path, mini, mini_summary):
    path = tmp_path / "model.keras"
    mini.save(path)
    loaded = tf_keras.models.load_model(path, safe_mode=True, compile=False)
    assert summary(loaded) == mini_summary


def test_first_difference_none_for_equal_and_json_round_tripped(mini_summary):
    assert first_difference(mini_summary, mini_summary) is None
    assert first_difference(json.loads(json.dumps(mini_summary)), mini_summary) is None


def test_first_difference_wrong_stride(mini, mini_summary):
    # Stage-1 convolution with stride 1 instead of 2.
    got = summary(with_layer_changed(mini, 2, strides=(1, 1)))
    message = first_difference(got, mini_summary)
    assert message.startswith(f"layer 2 of {len(mini_summary)} (Conv2D): output shape: expected (None, 16, 16, 8), got (None, 32, 32, 8)")
    assert "padding" not in message and "initializer" not in message


def test_first_difference_convolutional_block_stride():
    expected = summary(mini_resnet(s=2, size=48))
    got = summary(mini_resnet(s=1, size=48))
    conv1 = _index(expected, lambda e: e[0] == "Conv2D", 1)
    message = first_difference(got, expected)
    assert message.startswith(f"layer {conv1} of {len(expected)} (Conv2D): output shape:")
    assert "expected (None, 6, 6, 4), got (None, 11, 11, 4)" in message


def test_first_difference_missing_batch_normalization(mini, mini_summary):
    bn = _index(mini_summary, lambda e: e[0] == "BatchNormalization", 2)  # the conv block's second BN
    got = summary(without_layer(mini, bn))
    message = first_difference(got, mini_summary)
    assert message.startswith(f"layer {bn} of {len(mini_summary)}: expected a BatchNormalization layer, got Activation")
    assert message.endswith(f"(the model has {len(mini_summary) - 1} layers, expected {len(mini_summary)})")


def test_first_difference_wrong_initializer(mini, mini_summary):
    identity_conv = _index(mini_summary, lambda e: e[0] == "Conv2D" and e[-1] == "RandomUniform", 1)
    init = tf_keras.initializers.serialize(glorot_uniform(seed=0))
    got = summary(with_layer_changed(mini, identity_conv, kernel_initializer=init))
    assert first_difference(got, mini_summary) == (
        f"layer {identity_conv} of {len(mini_summary)} (Conv2D): "
        "kernel initializer: expected 'RandomUniform', got 'GlorotUniform'"
    )


def test_first_difference_different_padding(mini, mini_summary):
    got = summary(with_layer_changed(mini, 2, padding="same"))
    message = first_difference(got, mini_summary)
    assert message.startswith(f"layer 2 of {len(mini_summary)} (Conv2D): output shape: ")
    assert "padding: expected 'valid', got 'same'" in message

    got = summary(with_layer_changed(mini, 1, padding=((2, 2), (2, 2))))
    message = first_difference(got, mini_summary)
    assert message == (
        f"layer 1 of {len(mini_summary)} (ZeroPadding2D): output shape: expected (None, 38, 38, 3), "
        "got (None, 36, 36, 3); padding: expected ((3, 3), (3, 3)), got ((2, 2), (2, 2))"
    )

    got = summary(with_layer_changed(mini, 5, padding="same"))
    assert "layer 5 of" in first_difference(got, mini_summary)
    assert "(MaxPooling2D)" in first_difference(got, mini_summary)
    assert "padding: expected 'valid', got 'same'" in first_difference(got, mini_summary)


def test_first_difference_lengths(mini_summary):
    n = len(mini_summary)
    message = first_difference(mini_summary[:-1], mini_summary)
    assert message.startswith(f"the model has {n - 1} layers, expected {n}")
    assert "['Dense', (None, 6), 390, 'softmax']" in message
    extra = ["Dropout", (None, 6), 0, 0.5]
    message = first_difference([*mini_summary, extra], mini_summary)
    assert message.startswith(f"the model has {n + 1} layers, expected {n}")
    assert f"extra layer {n}: ['Dropout', (None, 6), 0, 0.5]" in message


def test_first_difference_on_the_full_resnet50(resnet, resnet_summary):
    # A missing BatchNormalization in stage 3's first identity block, on the real model.
    bn = _index(resnet_summary, lambda e: e[0] == "BatchNormalization" and e[1] == (None, 8, 8, 128), 2)
    message = first_difference(summary(without_layer(resnet, bn)), resnet_summary)
    assert message.startswith(f"layer {bn} of 177: expected a BatchNormalization layer, got Activation")
    assert message.endswith("(the model has 176 layers, expected 177)")


# -- the 2024 version's own BatchNormalization (exercises/resnet50/trusted_layers_2024.py) ----------
# Oracle: the formula of docs/course_facts.md §4.1 ("Later variant with the course's own
# BatchNormalization") computed in NumPy (float64), and the course's parameter counts.
def course_bn_2024():
    import importlib.util

    from grader.spec import EXERCISES_DIR

    spec = importlib.util.spec_from_file_location("test_ref_trusted_layers_2024",
                                                  EXERCISES_DIR / "resnet50" / "trusted_layers_2024.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BatchNormalization


@pytest.mark.parametrize("shape, axes", [((3, 4, 5, 6), (0, 1, 2)), ((7, 6), (0,))])
def test_the_2024_batch_normalization_follows_the_course_formula(shape, axes):
    rng = np.random.RandomState(3)
    X = (rng.randn(*shape) * 2 + 0.5).astype(np.float32)
    layer = course_bn_2024()(axis=-1)
    layer.build(X.shape)
    gamma, beta = rng.rand(6) + 0.5, rng.randn(6)
    old_mean, old_var = rng.randn(6), rng.rand(6) + 0.5
    layer.set_weights([w.astype(np.float32) for w in (beta, gamma, old_mean, old_var)])
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.weights] == ["beta", "gamma", "moving_mean",
                                                                           "moving_variance"]
    assert [w.trainable for w in layer.weights] == [True, True, False, False]

    x = X.astype(np.float64)
    # inference: the moving statistics, epsilon 1e-6
    np.testing.assert_allclose(np.asarray(layer(X, training=False)),
                               gamma * (x - old_mean) / np.sqrt(old_var + 1e-6) + beta, rtol=1e-5, atol=1e-5)
    # training: the batch's statistics (population variance), and the moving ones updated with momentum 0.9
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    np.testing.assert_allclose(np.asarray(layer(X, training=True)),
                               gamma * (x - mean) / np.sqrt(var + 1e-6) + beta, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), old_mean * 0.9 + mean * 0.1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), old_var * 0.9 + var * 0.1, rtol=1e-5, atol=1e-6)


def test_the_2024_batch_normalization_is_not_keras_s():
    """Keras's layer (epsilon 1e-3) gives other numbers on the same weights: the 2024 notebooks need
    their own reference."""
    X = np.random.RandomState(0).rand(2, 3, 3, 4).astype(np.float32) * 0.01
    ours = np.asarray(course_bn_2024()(axis=3)(X, training=True))
    keras = np.asarray(tf_keras.layers.BatchNormalization(axis=3)(X, training=True))
    assert not np.allclose(ours, keras, rtol=1e-4, atol=1e-5)


def test_the_2024_resnet50_has_the_course_counts_and_summary(resnet_summary):
    model = ref.ResNet50(input_shape=(64, 64, 3), classes=6, batch_norm=course_bn_2024())
    assert weight_counts(model) == (COURSE_TOTAL, COURSE_TRAINABLE, COURSE_NON_TRAINABLE)
    assert first_difference(summary(model), resnet_summary) is None
    assert Counter(type(layer).__name__ for layer in model.layers) == COURSE_CLASS_COUNTS
    # described as the course's own class, so it crosses to the model worker as a student's does
    described = [layer for layer in json.loads(model.to_json())["config"]["layers"]
                 if layer["class_name"] == "BatchNormalization"]
    assert len(described) == 53 and {layer["module"] for layer in described} == {"resnets_utils"}


def test_the_2024_blocks_normalise_with_the_2024_layer():
    """identity_block with training=False: the moving statistics are 0 / 1, so each
    BatchNormalization divides by sqrt(1 + epsilon): 1e-6 for 2024, 1e-3 for Keras's."""
    X = course_input()
    init = lambda seed=0: constant(value=1)  # noqa: E731
    keras = ref.identity_block(X, 2, [4, 4, 3], training=False, initializer=init).numpy()
    ours = ref.identity_block(X, 2, [4, 4, 3], training=False, initializer=init, batch_norm=course_bn_2024()).numpy()

    def block(eps: float) -> np.ndarray:  # constant-1 kernels, zero biases, BN = x / sqrt(1 + eps)
        s = 1 / np.sqrt(1 + eps)
        x = X.astype(np.float64)
        a = np.maximum(x.sum(axis=3, keepdims=True).repeat(4, 3) * s, 0)               # 1x1 conv, 4 filters
        p = np.pad(a, ((0, 0), (0, 1), (0, 1), (0, 0)))                                   # 2x2 'same'
        b = sum(p[:, i:i + 4, j:j + 4, :] for i in (0, 1) for j in (0, 1)).sum(axis=3, keepdims=True)
        b = np.maximum(b.repeat(4, 3) * s, 0)
        c = b.sum(axis=3, keepdims=True).repeat(3, 3) * s
        return np.maximum(c + x, 0)

    np.testing.assert_allclose(keras, block(1e-3), rtol=1e-5)
    np.testing.assert_allclose(ours, block(1e-6), rtol=1e-5)


def _helper_2024(name: str):
    import importlib.util

    from grader.spec import EXERCISES_DIR

    spec = importlib.util.spec_from_file_location(f"test_helpers_2024_{name}",
                                                  EXERCISES_DIR / "resnet50" / "helpers_2024" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_2024_helpers_layer_passes_the_2024_public_tests_and_keras_s_does_not(capsys):
    """The kernel's 2024 resnets_utils.BatchNormalization (what the notebook runs) computes as the
    trusted layer does: blocks built with it pass the 2024 public tests, whose numbers differ from
    the 2021 ones (so a correct 2024 notebook's test cells do not raise)."""
    from functools import partial

    layer = _helper_2024("resnets_utils").BatchNormalization
    tests = _helper_2024("public_tests")
    tests.identity_block_test(partial(ref.identity_block, batch_norm=layer))
    tests.convolutional_block_test(partial(ref.convolutional_block, batch_norm=layer))
    assert capsys.readouterr().out.count("All tests passed") == 2
    with pytest.raises(AssertionError, match="Wrong values"):
        tests.identity_block_test(ref.identity_block)
    with pytest.raises(AssertionError, match="Wrong values"):
        tests.convolutional_block_test(ref.convolutional_block)
