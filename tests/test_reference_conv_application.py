"""reference/conv_application.py against independent oracles.

Oracles:

* The course's published facts (docs/course_facts.md §3): both expected summary lists, copied here
  entry by entry as the notebook's test cells hold them, and the parameter counts (37,633 /
  37,569 trainable / 64 non-trainable; 1,310).
* Summaries written out here from the architecture description alone, by formula (output sizes
  of 'valid' and 'same' convolutions and pools, parameters k*k*c_in*c_out + c_out, 4 per
  BatchNormalization channel of which 2 are trainable, Dense n_in*n_out + n_out), for the course's
  input and for other input shapes (the grader builds convolutional_model for (32, 48, 1)).
* torch (float64): what the models compute, from the weights Keras initialized: happyModel in
  inference and in training mode (BatchNormalization with moving or batch statistics), and
  convolutional_model with TensorFlow's 'same' padding (the extra row/column after, not before).

Keras here is tf_keras (Keras 2), what ``tensorflow.keras`` is with TF_USE_LEGACY_KERAS=1; the
variable is set before TensorFlow is imported.
"""

from __future__ import annotations

import math
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before anything imports tensorflow
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from reference import conv_application as ref  # noqa: E402
from grader.keras_summary import first_difference, summary  # noqa: E402

# The notebook's expected lists (docs/course_facts.md §3), as its test cells write them.
COURSE_HAPPY_SUMMARY = [
    ['ZeroPadding2D', (None, 70, 70, 3), 0, ((3, 3), (3, 3))],
    ['Conv2D', (None, 64, 64, 32), 4736, 'valid', 'linear', 'GlorotUniform'],
    ['BatchNormalization', (None, 64, 64, 32), 128],
    ['ReLU', (None, 64, 64, 32), 0],
    ['MaxPooling2D', (None, 32, 32, 32), 0, (2, 2), (2, 2), 'valid'],
    ['Flatten', (None, 32768), 0],
    ['Dense', (None, 1), 32769, 'sigmoid'],
]
COURSE_SIGNS_SUMMARY = [
    ['InputLayer', [(None, 64, 64, 3)], 0],
    ['Conv2D', (None, 64, 64, 8), 392, 'same', 'linear', 'GlorotUniform'],
    ['ReLU', (None, 64, 64, 8), 0],
    ['MaxPooling2D', (None, 8, 8, 8), 0, (8, 8), (8, 8), 'same'],
    ['Conv2D', (None, 8, 8, 16), 528, 'same', 'linear', 'GlorotUniform'],
    ['ReLU', (None, 8, 8, 16), 0],
    ['MaxPooling2D', (None, 2, 2, 16), 0, (4, 4), (4, 4), 'same'],
    ['Flatten', (None, 64), 0],
    ['Dense', (None, 6), 390, 'softmax'],
]


def weight_counts(model) -> tuple[int, int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return model.count_params(), trainable, non_trainable


@pytest.fixture(scope="module")
def happy():
    return ref.happyModel()


@pytest.fixture(scope="module")
def signs():
    return ref.convolutional_model((64, 64, 3))


def test_tensorflow_keras_is_keras_2():
    assert tf.keras.layers.Conv2D is tf_keras.layers.Conv2D, (
        "tensorflow.keras is not tf_keras: TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set"
    )


# --------------------------------------------------------------------------- course facts


def test_happy_model_is_the_courses(happy):
    assert isinstance(happy, tf_keras.Sequential)
    assert summary(happy) == COURSE_HAPPY_SUMMARY
    assert weight_counts(happy) == (37_633, 37_569, 64)


def test_convolutional_model_is_the_courses(signs):
    assert isinstance(signs, tf_keras.Model) and not isinstance(signs, tf_keras.Sequential)
    assert summary(signs) == COURSE_SIGNS_SUMMARY
    assert weight_counts(signs) == (1_310, 1_310, 0)


def test_course_summaries_add_up_to_the_course_counts():
    assert sum(e[2] for e in COURSE_HAPPY_SUMMARY) == 37_633
    assert sum(e[2] for e in COURSE_SIGNS_SUMMARY) == 1_310


# --------------------------------------------------------------------------- summaries by formula


def _valid(n: int, k: int, s: int) -> int:
    return (n - k) // s + 1


def _same(n: int, s: int) -> int:
    return math.ceil(n / s)


def happy_summary_from_description(h: int = 64, w: int = 64, c: int = 3) -> list[list]:
    """ZEROPAD(3) -> CONV(32, 7x7, s1, valid) -> BN(axis 3) -> RELU -> MAXPOOL(2, 2) -> FLATTEN -> DENSE(1, sigmoid)."""
    h, w = h + 6, w + 6
    rows = [["ZeroPadding2D", (None, h, w, c), 0, ((3, 3), (3, 3))]]
    h, w = _valid(h, 7, 1), _valid(w, 7, 1)
    rows.append(["Conv2D", (None, h, w, 32), 7 * 7 * c * 32 + 32, "valid", "linear", "GlorotUniform"])
    rows.append(["BatchNormalization", (None, h, w, 32), 4 * 32])
    rows.append(["ReLU", (None, h, w, 32), 0])
    h, w = _valid(h, 2, 2), _valid(w, 2, 2)
    rows.append(["MaxPooling2D", (None, h, w, 32), 0, (2, 2), (2, 2), "valid"])
    rows.append(["Flatten", (None, h * w * 32), 0])
    rows.append(["Dense", (None, 1), h * w * 32 + 1, "sigmoid"])
    return rows


def signs_summary_from_description(h: int, w: int, c: int) -> list[list]:
    """CONV(8, 4x4, s1, same) -> RELU -> MAXPOOL(8, s8, same) -> CONV(16, 2x2, s1, same) -> RELU
    -> MAXPOOL(4, s4, same) -> FLATTEN -> DENSE(6, softmax)."""
    rows = [["InputLayer", [(None, h, w, c)], 0]]
    rows.append(["Conv2D", (None, h, w, 8), 4 * 4 * c * 8 + 8, "same", "linear", "GlorotUniform"])
    rows.append(["ReLU", (None, h, w, 8), 0])
    h, w = _same(h, 8), _same(w, 8)
    rows.append(["MaxPooling2D", (None, h, w, 8), 0, (8, 8), (8, 8), "same"])
    rows.append(["Conv2D", (None, h, w, 16), 2 * 2 * 8 * 16 + 16, "same", "linear", "GlorotUniform"])
    rows.append(["ReLU", (None, h, w, 16), 0])
    h, w = _same(h, 4), _same(w, 4)
    rows.append(["MaxPooling2D", (None, h, w, 16), 0, (4, 4), (4, 4), "same"])
    rows.append(["Flatten", (None, h * w * 16), 0])
    rows.append(["Dense", (None, 6), h * w * 16 * 6 + 6, "softmax"])
    return rows


def test_happy_summary_matches_the_written_architecture(happy):
    expected = happy_summary_from_description()
    assert expected == COURSE_HAPPY_SUMMARY  # the description and the course's list agree
    assert first_difference(summary(happy), expected) is None
    # Non-trainable: BatchNormalization's moving mean and variance, one each per channel.
    assert weight_counts(happy)[2] == 2 * 32


@pytest.mark.parametrize("shape", [(64, 64, 3), (32, 48, 1), (100, 37, 5), (8, 8, 3), (7, 65, 2)])
def test_convolutional_model_summary_matches_the_written_architecture(shape):
    expected = signs_summary_from_description(*shape)
    model = ref.convolutional_model(shape)
    assert first_difference(summary(model), expected) is None
    assert summary(model) == expected
    assert weight_counts(model) == (sum(e[2] for e in expected),) * 2 + (0,)
    if shape == (64, 64, 3):
        assert expected == COURSE_SIGNS_SUMMARY


def test_the_graders_other_shape_tells_valid_from_same_pooling():
    # On 64x64 both pools divide evenly ('valid' and 'same' agree); on (32, 48, 1) the second pool
    # sees 4x6 maps: 'same' gives 1x2, 'valid' 1x1.
    same = signs_summary_from_description(32, 48, 1)
    assert same[6][1] == (None, 1, 2, 16)
    assert (_valid(_valid(32, 8, 8), 4, 4), _valid(_valid(48, 8, 8), 4, 4)) == (1, 1)
    assert (_valid(_valid(64, 8, 8), 4, 4), _same(_same(64, 8), 4)) == (2, 2)


# --------------------------------------------------------------------------- what the models compute, vs torch


def _keras_weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.__class__.__name__ + str(i): [w.astype(np.float64) for w in layer.get_weights()]
            for i, layer in enumerate(model.layers) if layer.weights}


def _torch_conv(x: torch.Tensor, kernel: np.ndarray, bias: np.ndarray) -> torch.Tensor:
    """x NCHW, Keras kernel (kh, kw, c_in, c_out): a 'valid' convolution, stride 1."""
    return F.conv2d(x, torch.from_numpy(kernel).permute(3, 2, 0, 1), torch.from_numpy(bias))


def _tf_same_pad(x: torch.Tensor, k: int, s: int, value: float) -> torch.Tensor:
    """TensorFlow's 'same' padding of NCHW x for window k and stride s: out = ceil(n / s), the
    total padding max((out - 1) * s + k - n, 0), its smaller half before, the larger after."""
    pads = []
    for n in (x.shape[3], x.shape[2]):  # F.pad takes the last dimension first
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


def torch_happy(model, X: np.ndarray, training: bool) -> np.ndarray:
    w = list(_keras_weights(model).values())
    (kernel, bias), (gamma, beta, moving_mean, moving_var), (dense_w, dense_b) = w
    x = torch.from_numpy(X.astype(np.float64)).permute(0, 3, 1, 2)
    x = F.pad(x, [3, 3, 3, 3])
    x = _torch_conv(x, kernel, bias)
    if training:
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
    else:
        mean, var = torch.from_numpy(moving_mean), torch.from_numpy(moving_var)
    x = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-3)
    x = x * torch.from_numpy(gamma)[None, :, None, None] + torch.from_numpy(beta)[None, :, None, None]
    x = F.max_pool2d(F.relu(x), 2, 2)
    x = x.permute(0, 2, 3, 1).reshape(len(X), -1)  # Keras flattens NHWC
    return torch.sigmoid(x @ torch.from_numpy(dense_w) + torch.from_numpy(dense_b)).numpy()


def torch_signs(model, X: np.ndarray) -> np.ndarray:
    (k1, b1), (k2, b2), (dense_w, dense_b) = _keras_weights(model).values()
    x = torch.from_numpy(X.astype(np.float64)).permute(0, 3, 1, 2)
    x = F.relu(_torch_conv(_tf_same_pad(x, 4, 1, 0.0), k1, b1))
    x = F.max_pool2d(_tf_same_pad(x, 8, 8, -math.inf), 8, 8)
    x = F.relu(_torch_conv(_tf_same_pad(x, 2, 1, 0.0), k2, b2))
    x = F.max_pool2d(_tf_same_pad(x, 4, 4, -math.inf), 4, 4)
    x = x.permute(0, 2, 3, 1).reshape(len(X), -1)
    return torch.softmax(x @ torch.from_numpy(dense_w) + torch.from_numpy(dense_b), dim=1).numpy()


def _perturbed_batchnorm(model, rng) -> None:
    """Non-trivial BatchNormalization weights and statistics (fresh ones are 1, 0, 0, 1)."""
    bn = next(layer for layer in model.layers if isinstance(layer, tf_keras.layers.BatchNormalization))
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                    rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])


@pytest.mark.parametrize("training", [False, True])
def test_happy_model_computes_what_the_course_describes(training):
    rng = np.random.default_rng(0)
    model = ref.happyModel()
    _perturbed_batchnorm(model, rng)
    X = rng.uniform(0, 1, (3, 64, 64, 3)).astype(np.float32)
    got = np.asarray(model(X, training=training))
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got, torch_happy(model, X, training), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(64, 64, 3), (32, 48, 1), (13, 21, 2)])
def test_convolutional_model_computes_what_the_course_describes(shape):
    rng = np.random.default_rng(1)
    model = ref.convolutional_model(shape)
    # Non-zero biases, so that the padded borders matter after the first convolution.
    model.set_weights([w if w.ndim > 1 else rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    X = rng.normal(0, 1, (4, *shape)).astype(np.float32)
    got = np.asarray(model(X))
    assert got.shape == (4, 6)
    np.testing.assert_allclose(got, torch_signs(model, X), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1, rtol=1e-5)
