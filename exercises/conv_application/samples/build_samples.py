"""Build the sample submissions of conv_application (course notebook Convolution_model_Application)
from ../template.ipynb.

Run from anywhere with the project's virtualenv:

    .venv/bin/python exercises/conv_application/samples/build_samples.py

Each sample is the template with the code regions (between "# YOUR CODE STARTS HERE" and
"# YOUR CODE ENDS HERE") filled in the way a student of the course would, plus the edits named in
each sample's function. Everything else, in particular the training cells (`happy_model.fit(...)`,
`conv_model.fit(train_dataset, epochs=100, ...)`, the history plots), is left as in the template,
so that a grader that skips those cells sees the student's code as the only difference.

All outputs are cleared. The expected grading verdicts are in expected.toml next to this script;
keep the two in step. The output is deterministic: running the script again rewrites identical
files.
"""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sample_builder import Template, changed, write_samples  # noqa: E402

# nbgrader grade_ids (course notebook Convolution_model_Application)
SOLUTION_IDS = {
    "happyModel": "cell-0e56d3fc28b69aec",
    "convolutional_model": "cell-dac51744a9e03f51",
}
TEMPLATE = Template(HERE.parent / "template.ipynb", SOLUTION_IDS,
                    start="# YOUR CODE STARTS HERE", end="# YOUR CODE ENDS HERE")
# The happyModel region is inside the list given to tf.keras.Sequential([...]).
INDENT = {"happyModel": 12, "convolutional_model": 4}

# ------------------------------------------------------------------------------------------------
# Correct, course-style code regions, with the notebook's `import tensorflow.keras.layers as tfl`.
CORRECT = {
    "happyModel": """
tfl.ZeroPadding2D(padding=3, input_shape=(64, 64, 3)),
tfl.Conv2D(filters=32, kernel_size=7, strides=1),
tfl.BatchNormalization(axis=3),
tfl.ReLU(),
tfl.MaxPool2D(),
tfl.Flatten(),
tfl.Dense(1, activation='sigmoid'),
""",
    "convolutional_model": """
Z1 = tfl.Conv2D(filters=8, kernel_size=4, strides=1, padding='same')(input_img)
A1 = tfl.ReLU()(Z1)
P1 = tfl.MaxPool2D(pool_size=8, strides=8, padding='same')(A1)
Z2 = tfl.Conv2D(filters=16, kernel_size=2, strides=1, padding='same')(P1)
A2 = tfl.ReLU()(Z2)
P2 = tfl.MaxPool2D(pool_size=4, strides=4, padding='same')(A2)
F = tfl.Flatten()(P2)
outputs = tfl.Dense(units=6, activation='softmax')(F)
""",
}


def fill(nb, name, body):
    TEMPLATE.fill(nb, name, body, indent=INDENT[name])
    return nb


def all_correct():
    """The template with every code region filled correctly."""
    nb = TEMPLATE.load()
    for name, body in CORRECT.items():
        fill(nb, name, body)
    return nb


def with_edit(name, old, new, count=1):
    """Every region correct except name's, which has one textual change (old must occur count times)."""
    return fill(all_correct(), name, changed(CORRECT[name], old, new, count))


# ------------------------------------------------------------------------------------------------
def sample_correct():
    return all_correct()


def sample_correct_keras_style():
    """Correct, written without the tfl alias: full tf.keras.layers paths, sizes as tuples, the
    MaxPooling2D name, padding in capitals as the template's comments write it ('SAME'), keyword
    spellings of the Sequential's first layer."""
    nb = TEMPLATE.load()
    fill(nb, "happyModel", """
        tf.keras.layers.ZeroPadding2D(padding=(3, 3), input_shape=(64, 64, 3)),
        tf.keras.layers.Conv2D(32, (7, 7), strides=(1, 1)),
        tf.keras.layers.BatchNormalization(axis=3),
        tf.keras.layers.ReLU(),
        tf.keras.layers.MaxPooling2D(),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(units=1, activation='sigmoid')
        """)
    fill(nb, "convolutional_model", """
        Z1 = tf.keras.layers.Conv2D(8, (4, 4), strides=(1, 1), padding='SAME')(input_img)
        A1 = tf.keras.layers.ReLU()(Z1)
        P1 = tf.keras.layers.MaxPooling2D(pool_size=(8, 8), strides=(8, 8), padding='SAME')(A1)
        Z2 = tf.keras.layers.Conv2D(16, (2, 2), strides=(1, 1), padding='SAME')(P1)
        A2 = tf.keras.layers.ReLU()(Z2)
        P2 = tf.keras.layers.MaxPooling2D(pool_size=(4, 4), strides=(4, 4), padding='SAME')(A2)
        F = tf.keras.layers.Flatten()(P2)
        outputs = tf.keras.layers.Dense(6, activation='softmax')(F)
        """)
    return nb


def sample_happy_same_padding():
    """happyModel pads inside the convolution (padding='same') instead of a ZeroPadding2D(3) layer:
    the same output shapes, parameters and even outputs (7x7, stride 1: 'same' pads 3 on every
    side), but not the architecture the exercise asks for (six layers, the first a Conv2D)."""
    return with_edit("happyModel",
                     "tfl.ZeroPadding2D(padding=3, input_shape=(64, 64, 3)),\n"
                     "tfl.Conv2D(filters=32, kernel_size=7, strides=1),",
                     "tfl.Conv2D(filters=32, kernel_size=7, strides=1, padding='same', input_shape=(64, 64, 3)),")


def sample_happy_zeropad_and_same_padding():
    """happyModel has the ZeroPadding2D(3) and, on top of it, padding='same' in the Conv2D: the
    feature maps are 70x70 instead of 64x64 and the Dense layer has 39,201 parameters, not 32,769."""
    return with_edit("happyModel", "tfl.Conv2D(filters=32, kernel_size=7, strides=1),",
                     "tfl.Conv2D(filters=32, kernel_size=7, strides=1, padding='same'),")


def sample_happy_no_input_shape():
    """happyModel's first layer has no input_shape: Keras cannot build the Sequential until it is
    called on data, so the model has no output shapes and no weights yet (the notebook's summary()
    raises)."""
    return with_edit("happyModel", "tfl.ZeroPadding2D(padding=3, input_shape=(64, 64, 3)),",
                     "tfl.ZeroPadding2D(padding=3),")


def sample_happy_missing_batchnorm():
    """happyModel without its BatchNormalization layer."""
    return with_edit("happyModel", "tfl.BatchNormalization(axis=3),\n", "")


def sample_happy_softmax_output():
    """happyModel's Dense(1) uses softmax: over a single unit softmax is always 1."""
    return with_edit("happyModel", "tfl.Dense(1, activation='sigmoid'),", "tfl.Dense(1, activation='softmax'),")


def sample_happy_linear_output():
    """happyModel's Dense(1) has no activation: it outputs an unbounded score, not a probability."""
    return with_edit("happyModel", "tfl.Dense(1, activation='sigmoid'),", "tfl.Dense(1),")


def sample_signs_valid_pooling():
    """convolutional_model's two MaxPool2D layers keep Keras' default padding ('valid')."""
    nb = all_correct()
    body = changed(CORRECT["convolutional_model"], "strides=8, padding='same')", "strides=8)")
    body = changed(body, "strides=4, padding='same')", "strides=4)")
    return fill(nb, "convolutional_model", body)


def sample_signs_wrong_pool_size():
    """convolutional_model's first MaxPool2D has a 4x4 window and stride 4 (the second one's)
    instead of 8x8, stride 8."""
    return with_edit("convolutional_model", "tfl.MaxPool2D(pool_size=8, strides=8, padding='same')",
                     "tfl.MaxPool2D(pool_size=4, strides=4, padding='same')")


def sample_signs_hardcoded_input_shape():
    """convolutional_model redefines its input with the notebook's picture size, ignoring the
    input_shape argument: right for (64, 64, 3), wrong for any other size."""
    nb = all_correct()
    body = "input_img = tf.keras.Input(shape=(64, 64, 3))\n" + CORRECT["convolutional_model"].lstrip("\n")
    return fill(nb, "convolutional_model", body)


def sample_template_unfilled():
    return TEMPLATE.load()


NOTEBOOK_SAMPLES = {
    "correct": sample_correct,
    "correct_keras_style": sample_correct_keras_style,
    "happy_same_padding": sample_happy_same_padding,
    "happy_zeropad_and_same_padding": sample_happy_zeropad_and_same_padding,
    "happy_no_input_shape": sample_happy_no_input_shape,
    "happy_missing_batchnorm": sample_happy_missing_batchnorm,
    "happy_softmax_output": sample_happy_softmax_output,
    "happy_linear_output": sample_happy_linear_output,
    "signs_valid_pooling": sample_signs_valid_pooling,
    "signs_wrong_pool_size": sample_signs_wrong_pool_size,
    "signs_hardcoded_input_shape": sample_signs_hardcoded_input_shape,
    "template_unfilled": sample_template_unfilled,
}


if __name__ == "__main__":
    write_samples(HERE, NOTEBOOK_SAMPLES)
