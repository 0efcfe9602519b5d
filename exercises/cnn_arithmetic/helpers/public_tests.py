"""Public tests called from the cnn_arithmetic notebook: the lectures' own examples.

They run inside the student's kernel and only give feedback; grading happens elsewhere, on
other sizes drawn at random and against Keras. Each prints "All tests passed!" or raises
AssertionError saying what was expected.
"""
import numpy as np

GREEN = "\033[92m"
RESET = "\033[0m"


def _passed():
    print(GREEN + "All tests passed!" + RESET)


def _expect(got, expected, what):
    assert got == expected, f"{what}: expected {expected!r}, got {got!r}"


def _as_ints(values):
    return tuple(int(v) if float(v) == int(v) else v for v in values)


def conv_output_shape_test(target):
    _expect(_as_ints(target(6, 6, 3, 0, 1)), (4, 4), "6x6 input, 3x3 filter, no padding, stride 1")
    _expect(_as_ints(target(6, 6, 3, 1, 1)), (6, 6), "6x6 input, 3x3 filter, pad 1, stride 1")
    _expect(_as_ints(target(7, 7, 3, 0, 2)), (3, 3), "7x7 input, 3x3 filter, no padding, stride 2")
    _expect(_as_ints(target(6, 8, 3, 0, 1)), (4, 6), "6x8 input, 3x3 filter (height first, then width)")
    _passed()


def same_padding_test(target):
    for f, p in ((1, 0), (3, 1), (5, 2), (7, 3)):
        _expect(target(f), p, f"same padding for f = {f}")
    _passed()


def conv_params_test(target):
    _expect(target(3, 3, 10), 280, "10 filters of 3x3 on a 6x6x3 input")
    _expect(target(1, 192, 16), 3088, "16 filters of 1x1 on 192 channels")
    _passed()


def conv_multiplies_test(target):
    _expect(target(28, 28, 192, 5, 32, pad=2), 120422400, "28x28x192 -> 5x5 'same' convolution, 32 filters")
    bottleneck = target(28, 28, 192, 1, 16) + target(28, 28, 16, 5, 32, pad=2)
    _expect(bottleneck, 12443648, "the same through a 1x1 bottleneck to 16 channels")
    _passed()


def depthwise_separable_multiplies_test(target):
    got = target(6, 6, 3, 3, 5)
    assert isinstance(got, dict), f"expected a dict, got {type(got).__name__}"
    _expect(got, {"normal": 2160, "depthwise": 432, "pointwise": 240, "total": 672},
            "6x6x3 input, 3x3 filters, 5 output channels")
    _passed()


def _count(model):
    return int(sum(np.prod(w.shape) for w in model.weights))


def _wrap(block, shape, **kwargs):
    import tensorflow as tf
    X = tf.keras.Input(shape=shape)
    return tf.keras.Model(X, block(X, **kwargs))


def inception_module_test(target):
    model = _wrap(target, (28, 28, 192))
    _expect(tuple(model.output_shape), (None, 28, 28, 256), "output shape on a 28x28x192 input")
    _expect(_count(model), 163696, "parameters on a 28x28x192 input")
    _passed()


def mobilenet_v2_bottleneck_test(target):
    model = _wrap(target, (56, 56, 24), out_channels=24)
    _expect(tuple(model.output_shape), (None, 56, 56, 24), "output shape, 56x56x24 -> 24 channels")
    _expect(_count(model), 9456, "parameters, 56x56x24 -> 24 channels (expansion 6)")
    assert any(type(layer).__name__ == "Add" for layer in model.layers), "24 -> 24 channels: the residual Add is missing"
    model = _wrap(target, (56, 56, 24), out_channels=32)
    _expect(tuple(model.output_shape), (None, 56, 56, 32), "output shape, 56x56x24 -> 32 channels")
    _passed()


def lenet5_param_table_test(target):
    table = target()
    names = [row[0] for row in table]
    _expect(names, ["INPUT", "CONV1", "POOL1", "CONV2", "POOL2", "FC3", "FC4", "SOFTMAX"], "the rows")
    _expect(tuple(table[1][1]), (28, 28, 8), "CONV1's activation shape")
    _expect(table[2][2], 1568, "POOL1's activation size")
    total = sum(row[3] for row in table)
    assert total > 0, "fill in the parameter counts"
    _passed()
