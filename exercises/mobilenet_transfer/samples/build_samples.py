"""Build the sample submissions of mobilenet_transfer (course notebook
Transfer_learning_with_MobileNet_v1) from ../template.ipynb.

Run from anywhere with the project's virtualenv:

    .venv/bin/python exercises/mobilenet_transfer/samples/build_samples.py

Each sample is the template with the code regions (between "### START CODE HERE" and
"### END CODE HERE") filled in the way a student of the course would (the course's solution code),
plus the edits named in each sample's function. Everything else, in particular the training cells
(`model2.fit(...)`), their plots and the `decode_predictions` cell, is left as in the template, so
that a grader that skips those cells sees the student's code as the only difference. Two samples
also edit given code outside the regions, as students do: weights_from_path (the demonstration
cell's full model) and fine_tune_at_110 (the `fine_tune_at = 120` line of the fine-tuning cell).

Graded items and their solution cells (nbgrader grade_ids, stable across the course's versions):
data_augmenter and alpaca_model are functions; fine_tuning is the top-level UNQ_C3 cell, graded
from the globals it leaves.

All outputs are cleared. The expected grading verdicts are in expected.toml next to this script;
keep the two in step. The output is deterministic: running the script again rewrites identical
files.
"""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sample_builder import Template, changed, edit_cell, write_samples  # noqa: E402

# nbgrader grade_ids (course notebook Transfer_learning_with_MobileNet_v1)
SOLUTION_IDS = {
    "data_augmenter": "cell-cd6b3e9f32b1bf37",
    "alpaca_model": "cell-106ac76f39286ee3",
    "fine_tuning": "cell-5c3d1b52347cc066",
}
TEMPLATE = Template(HERE.parent / "template.ipynb", SOLUTION_IDS,
                    start="### START CODE HERE", end="### END CODE HERE")

# Indentation of each code region: the two functions' bodies, and top-level code.
INDENT = {"data_augmenter": 4, "alpaca_model": 4, "fine_tuning": 0}

# The weight files the grader puts beside the notebook (spec.toml, [data.files.*]).
NO_TOP_PATH = "imagenet_base_model/without_top_mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"
WITH_TOP_PATH = "imagenet_base_model/with_top_mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160.h5"

# ------------------------------------------------------------------------------------------------
# Correct, course-style code regions, written at indentation 0 (indented when filled).
CORRECT = {
    "data_augmenter": """
data_augmentation = tf.keras.Sequential()
data_augmentation.add(RandomFlip('horizontal'))
data_augmentation.add(RandomRotation(0.2))
""",
    "alpaca_model": """
base_model = tf.keras.applications.MobileNetV2(input_shape=input_shape,
                                               include_top=False, # <== Important!!!!
                                               weights='imagenet') # From imageNet

# freeze the base model by making it non trainable
base_model.trainable = False

# create the input layer (same size as the images)
inputs = tf.keras.Input(shape=input_shape)

# apply data augmentation to the inputs
x = data_augmentation(inputs)

# data preprocessing, with the scaling the base model was trained with
x = preprocess_input(x)

# call the base model with training=False, so that its batch normalization
# layers keep their ImageNet statistics
x = base_model(x, training=False)

# the new binary classification head
# global average pooling summarizes each channel of the feature map
x = tfl.GlobalAveragePooling2D()(x)
# dropout with probability 0.2 against overfitting
x = tfl.Dropout(0.2)(x)

# a prediction layer with one neuron (one logit is enough for two classes)
outputs = tfl.Dense(1)(x)
""",
    "fine_tuning": """
# Freeze all the layers before the `fine_tune_at` layer
for layer in base_model.layers[:fine_tune_at]:
    layer.trainable = False

# Define a BinaryCrossentropy loss function. Use from_logits=True
loss_function=tf.keras.losses.BinaryCrossentropy(from_logits=True)
# Define an Adam optimizer with a learning rate of 0.1 * base_learning_rate
optimizer = tf.keras.optimizers.Adam(learning_rate=0.1*base_learning_rate)
# Use accuracy as evaluation metric
metrics=['accuracy']
""",
}


# ------------------------------------------------------------------------------------------------
def fill(nb, name, body):
    """Fill name's code region with body, at that region's indentation (INDENT)."""
    TEMPLATE.fill(nb, name, body, indent=INDENT[name])


def body_edit(name, old, new, count=1):
    """The correct code region of name with one textual change (old must occur count times)."""
    return changed(CORRECT[name], old, new, count)


def all_correct():
    """The template with every code region filled correctly."""
    nb = TEMPLATE.load()
    for name, body in CORRECT.items():
        fill(nb, name, body)
    return nb


# ------------------------------------------------------------------------------------------------
def sample_correct():
    return all_correct()


def sample_weights_from_path():
    """Correct, but the weights are loaded from the course's files beside the notebook (as the
    course's own environment did, offline) instead of weights='imagenet': alpaca_model's base,
    and the demonstration cell's full model."""
    nb = TEMPLATE.load()
    fill(nb, "data_augmenter", CORRECT["data_augmenter"])
    fill(nb, "alpaca_model", body_edit(
        "alpaca_model", "weights='imagenet') # From imageNet",
        'weights="{}") # From imageNet'.format(NO_TOP_PATH)))
    fill(nb, "fine_tuning", CORRECT["fine_tuning"])
    edit_cell(nb.cells[TEMPLATE.cell_index_by_id(nb, "full-model")],
              "weights='imagenet')", 'weights="{}")'.format(WITH_TOP_PATH))
    return nb


def sample_base_not_pretrained():
    """alpaca_model builds its base with weights=None: architecture, counts, freezing and the call
    are all right, but the base was never pretrained, so the model transfers nothing (a real
    notebook's own training stayed at 0.45 accuracy). model2 is graded as built, and the grader's
    training loads the pretrained weights itself."""
    nb = all_correct()
    fill(nb, "alpaca_model", body_edit(
        "alpaca_model", "weights='imagenet') # From imageNet", "weights=None) # From imageNet"))
    return nb


def sample_legacy_lr():
    """Correct, in Keras 2 era spelling: Adam(lr=...) for the fine-tuning optimizer (TF >= 2.11
    drops `lr` with a warning; the grader's kernel reads it as the rate it meant), and the
    augmenter built from a list of layers instead of with add()."""
    nb = TEMPLATE.load()
    fill(nb, "data_augmenter", """
        data_augmentation = tf.keras.Sequential([RandomFlip('horizontal'), RandomRotation(0.2)])
        """)
    fill(nb, "alpaca_model", CORRECT["alpaca_model"])
    fill(nb, "fine_tuning", body_edit(
        "fine_tuning", "tf.keras.optimizers.Adam(learning_rate=0.1*base_learning_rate)",
        "tf.keras.optimizers.Adam(lr=0.1*base_learning_rate)"))
    return nb


def sample_base_trainable():
    """alpaca_model leaves the base trainable (base_model.trainable = True): the whole network is
    trained from the first epoch. The notebook's comparator does not see it (count_params counts
    trainable and frozen weights alike)."""
    nb = all_correct()
    fill(nb, "alpaca_model", body_edit(
        "alpaca_model", "base_model.trainable = False", "base_model.trainable = True"))
    return nb


def sample_fine_tune_at_110():
    """The fine-tuning cell's given `fine_tune_at = 120` changed to 110: ten more layers of the
    base are unfrozen."""
    nb = all_correct()
    TEMPLATE.edit(nb, "fine_tuning", "fine_tune_at = 120", "fine_tune_at = 110")
    return nb


def sample_no_from_logits():
    """The fine-tuning loss is BinaryCrossentropy() with from_logits=False, for a model whose
    output is a logit."""
    nb = all_correct()
    fill(nb, "fine_tuning", body_edit(
        "fine_tuning", "tf.keras.losses.BinaryCrossentropy(from_logits=True)",
        "tf.keras.losses.BinaryCrossentropy()"))
    return nb


def sample_wrong_learning_rate():
    """The fine-tuning optimizer keeps the base learning rate (0.001) instead of a tenth of it."""
    nb = all_correct()
    fill(nb, "fine_tuning", body_edit(
        "fine_tuning", "Adam(learning_rate=0.1*base_learning_rate)",
        "Adam(learning_rate=base_learning_rate)"))
    return nb


def sample_vertical_flip():
    """data_augmenter flips vertically (RandomFlip('vertical')) instead of horizontally."""
    nb = all_correct()
    fill(nb, "data_augmenter", body_edit(
        "data_augmenter", "RandomFlip('horizontal')", "RandomFlip('vertical')"))
    return nb


def sample_base_in_training_mode():
    """alpaca_model calls the base with training=True: its BatchNormalization layers normalise
    with the statistics of each batch, also at inference time. Same layers and summary."""
    nb = all_correct()
    fill(nb, "alpaca_model", body_edit(
        "alpaca_model", "x = base_model(x, training=False)", "x = base_model(x, training=True)"))
    return nb


def sample_sigmoid_output():
    """alpaca_model's output layer has a sigmoid activation: it outputs a probability, not the
    logit the losses (from_logits=True) expect."""
    nb = all_correct()
    fill(nb, "alpaca_model", body_edit(
        "alpaca_model", "outputs = tfl.Dense(1)(x)", "outputs = tfl.Dense(1, activation='sigmoid')(x)"))
    return nb


def sample_template_unfilled():
    return TEMPLATE.load()


NOTEBOOK_SAMPLES = {
    "correct": sample_correct,
    "weights_from_path": sample_weights_from_path,
    "base_not_pretrained": sample_base_not_pretrained,
    "legacy_lr": sample_legacy_lr,
    "base_trainable": sample_base_trainable,
    "fine_tune_at_110": sample_fine_tune_at_110,
    "no_from_logits": sample_no_from_logits,
    "wrong_learning_rate": sample_wrong_learning_rate,
    "vertical_flip": sample_vertical_flip,
    "base_in_training_mode": sample_base_in_training_mode,
    "sigmoid_output": sample_sigmoid_output,
    "template_unfilled": sample_template_unfilled,
}


if __name__ == "__main__":
    write_samples(HERE, NOTEBOOK_SAMPLES)
