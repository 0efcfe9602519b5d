"""Build the sample submissions of cnn_arithmetic from ../template.ipynb.

    .venv/bin/python exercises/cnn_arithmetic/samples/build_samples.py

Each sample is the template with its code regions filled in as a student would, with the
mistakes students make with these numbers (most of them pass the notebook's own tests, which
use the lectures' examples only). The expected verdicts are in expected.toml; keep the two in
step. Deterministic: running it again rewrites identical files.
"""
from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sample_builder import Template, changed, write_samples  # noqa: E402

TEMPLATE = Template(HERE.parent / "template.ipynb", {
    "conv_output_shape": "cell-cnnar-conv-output-shape",
    "same_padding": "cell-cnnar-same-padding",
    "conv_params": "cell-cnnar-conv-params",
    "conv_multiplies": "cell-cnnar-conv-multiplies",
    "depthwise_separable_multiplies": "cell-cnnar-depthwise",
    "inception_module": "cell-cnnar-inception",
    "mobilenet_v2_bottleneck": "cell-cnnar-bottleneck",
    "lenet5_param_table": "cell-cnnar-lenet5",
}, start="# YOUR CODE STARTS HERE", end="# YOUR CODE ENDS HERE")

CORRECT = {
    "conv_output_shape": """
n_h_out = (n_h + 2 * pad - f) // stride + 1
n_w_out = (n_w + 2 * pad - f) // stride + 1
""",
    "same_padding": """
pad = (f - 1) // 2
""",
    "conv_params": """
params = (f * f * n_c_prev + 1) * n_c
""",
    "conv_multiplies": """
n_h_out, n_w_out = conv_output_shape(n_h, n_w, f, pad, stride)
multiplies = n_h_out * n_w_out * n_c * f * f * n_c_prev
""",
    "depthwise_separable_multiplies": """
n_h_out, n_w_out = conv_output_shape(n_h, n_w, f, 0, 1)
normal = n_h_out * n_w_out * n_c * f * f * n_c_prev
depthwise = n_h_out * n_w_out * n_c_prev * f * f
pointwise = n_h_out * n_w_out * n_c_prev * n_c
""",
    "inception_module": """
branch_1x1 = tfl.Conv2D(64, 1, padding='same', activation='relu')(X)
branch_3x3 = tfl.Conv2D(96, 1, padding='same', activation='relu')(X)
branch_3x3 = tfl.Conv2D(128, 3, padding='same', activation='relu')(branch_3x3)
branch_5x5 = tfl.Conv2D(16, 1, padding='same', activation='relu')(X)
branch_5x5 = tfl.Conv2D(32, 5, padding='same', activation='relu')(branch_5x5)
branch_pool = tfl.MaxPooling2D(3, strides=1, padding='same')(X)
branch_pool = tfl.Conv2D(32, 1, padding='same', activation='relu')(branch_pool)
X = tfl.Concatenate(axis=-1)([branch_1x1, branch_3x3, branch_5x5, branch_pool])
""",
    "mobilenet_v2_bottleneck": """
Y = tfl.Conv2D(expansion * n_c, 1, padding='same', use_bias=False)(X)
Y = tfl.BatchNormalization(epsilon=1e-3, momentum=0.999)(Y)
Y = tfl.ReLU(6.)(Y)
Y = tfl.DepthwiseConv2D(3, padding='same', use_bias=False)(Y)
Y = tfl.BatchNormalization(epsilon=1e-3, momentum=0.999)(Y)
Y = tfl.ReLU(6.)(Y)
Y = tfl.Conv2D(out_channels, 1, padding='same', use_bias=False)(Y)
Y = tfl.BatchNormalization(epsilon=1e-3, momentum=0.999)(Y)
if n_c == out_channels:
    Y = tfl.Add()([X, Y])
""",
    "lenet5_param_table": """
table.append(("CONV1", (28, 28, 8), 6272, 5 * 5 * 3 * 8 + 8))
table.append(("POOL1", (14, 14, 8), 1568, 0))
table.append(("CONV2", (10, 10, 16), 1600, 5 * 5 * 8 * 16 + 16))
table.append(("POOL2", (5, 5, 16), 400, 0))
table.append(("FC3", (120,), 120, 400 * 120 + 120))
table.append(("FC4", (84,), 84, 120 * 84 + 84))
table.append(("SOFTMAX", (10,), 10, 84 * 10 + 10))
""",
}


def correct(**changes: str):
    """The template filled correctly, except for the items given new bodies."""
    return lambda: TEMPLATE.fill_all(TEMPLATE.load(), {**CORRECT, **changes})


def sample_correct_with_keras():
    """Counting with Keras instead of formulas (a fair answer), the lecture's (n, 1) vector shapes,
    and Keras' own MobileNet-style blocks written with other names and branch order."""
    return correct(
        conv_params="""
layer = tf.keras.layers.Conv2D(n_c, f)
layer.build((None, None, None, n_c_prev))
params = layer.count_params()
""",
        lenet5_param_table="""
model = tf.keras.Sequential([tf.keras.Input(shape=(32, 32, 3)),
                             tfl.Conv2D(8, 5), tfl.MaxPooling2D(2), tfl.Conv2D(16, 5), tfl.MaxPooling2D(2),
                             tfl.Flatten(), tfl.Dense(120), tfl.Dense(84), tfl.Dense(10, activation='softmax')])
names = ["CONV1", "POOL1", "CONV2", "POOL2", None, "FC3", "FC4", "SOFTMAX"]
for name, layer in zip(names, model.layers):
    if name is None:
        continue
    shape = tuple(layer.output_shape[1:])
    if len(shape) == 1:
        shape = (shape[0], 1)
    table.append((name, shape, int(np.prod(shape)), layer.count_params()))
""",
        inception_module="""
pool = tfl.MaxPool2D(pool_size=(3, 3), strides=(1, 1), padding='same')(X)
pool = tfl.Conv2D(filters=32, kernel_size=(1, 1), activation='relu')(pool)
b5 = tfl.Conv2D(filters=16, kernel_size=(1, 1), activation='relu')(X)
b5 = tfl.Conv2D(filters=32, kernel_size=(5, 5), padding='same', activation='relu')(b5)
b3 = tfl.Conv2D(filters=96, kernel_size=(1, 1), activation='relu')(X)
b3 = tfl.Conv2D(filters=128, kernel_size=(3, 3), padding='same', activation='relu')(b3)
b1 = tfl.Conv2D(filters=64, kernel_size=(1, 1))(X)
b1 = tfl.Activation('relu')(b1)
X = tf.keras.layers.concatenate([b1, b3, b5, pool])
""")()


SAMPLES = {
    "correct": correct(),
    "correct_with_keras": sample_correct_with_keras,
    # `/` instead of `//`: right whenever the stride divides evenly (the notebook's examples).
    "shape_true_division": correct(conv_output_shape=changed(CORRECT["conv_output_shape"], "//", "/", 2)),
    # The lecture slide's own mistake: the filter's depth left out (5*5*8 + 8 = 208 for CONV1).
    "params_ignore_input_channels": correct(
        conv_params="params = (f * f + 1) * n_c\n",
        lenet5_param_table=CORRECT["lenet5_param_table"].replace("5 * 5 * 3 * 8", "5 * 5 * 8")
        .replace("5 * 5 * 8 * 16", "5 * 5 * 16")),
    # Counting over the input's positions: right for "same" convolutions (the Inception example).
    "multiplies_input_positions": correct(conv_multiplies="multiplies = n_h * n_w * n_c * f * f * n_c_prev\n"),
    # The pointwise convolution counted as if it were f x f.
    "pointwise_with_filter_size": correct(depthwise_separable_multiplies=changed(
        CORRECT["depthwise_separable_multiplies"], "n_c_prev * n_c\n", "n_c_prev * n_c * f * f\n")),
    # Same layers, same counts, branches concatenated in another order: only what it computes differs.
    "inception_concat_order": correct(inception_module=changed(
        CORRECT["inception_module"], "[branch_1x1, branch_3x3, branch_5x5, branch_pool]",
        "[branch_1x1, branch_5x5, branch_3x3, branch_pool]")),
    # The pool branch without its 1x1 projection: 192 channels instead of 32.
    "inception_pool_unprojected": correct(inception_module=changed(
        CORRECT["inception_module"], "branch_pool = tfl.Conv2D(32, 1, padding='same', activation='relu')(branch_pool)\n",
        "")),
    # A ReLU6 after the projection: the bottleneck is no longer linear (counts unchanged).
    "bottleneck_relu_after_projection": correct(mobilenet_v2_bottleneck=changed(
        CORRECT["mobilenet_v2_bottleneck"], "Y = tfl.BatchNormalization(epsilon=1e-3, momentum=0.999)(Y)\nif",
        "Y = tfl.BatchNormalization(epsilon=1e-3, momentum=0.999)(Y)\nY = tfl.ReLU(6.)(Y)\nif")),
    # No residual connection.
    "bottleneck_no_residual": correct(mobilenet_v2_bottleneck=changed(
        CORRECT["mobilenet_v2_bottleneck"], "if n_c == out_channels:\n    Y = tfl.Add()([X, Y])\n", "")),
    # Keras' default bias on every convolution: the counts grow.
    "bottleneck_with_bias": correct(mobilenet_v2_bottleneck=CORRECT["mobilenet_v2_bottleneck"]
                                    .replace(", use_bias=False", "")),
    # The numbers copied from the lecture's slide.
    "lenet_lecture_numbers": correct(lenet5_param_table="""
table.append(("CONV1", (28, 28, 8), 6272, 208))
table.append(("POOL1", (14, 14, 8), 1568, 0))
table.append(("CONV2", (10, 10, 16), 1600, 416))
table.append(("POOL2", (5, 5, 16), 400, 0))
table.append(("FC3", (120, 1), 120, 48001))
table.append(("FC4", (84, 1), 84, 10081))
table.append(("SOFTMAX", (10, 1), 10, 841))
"""),
    "template_unfilled": TEMPLATE.load,
}


if __name__ == "__main__":
    write_samples(HERE, SAMPLES)
