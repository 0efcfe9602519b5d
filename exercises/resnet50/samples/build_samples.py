"""Build the sample submissions of resnet50 (course notebook Residual_Networks) from ../template.ipynb.

Run from anywhere with the project's virtualenv:

    .venv/bin/python exercises/resnet50/samples/build_samples.py

Each sample is the template with the code regions (between "### START CODE HERE" and
"### END CODE HERE") filled in the way a student of the course would (course v1 2021 code), plus
the edits named in each sample's function. Everything else, in particular the training cells
(`model.fit(X_train, Y_train, epochs = 10, batch_size = 32)`, `model.evaluate(...)`), is left as in
the template, so that a grader that skips the cells calling `.fit(` sees the student's code as the
only difference. Two samples differ in more than the code regions, on purpose:

- correct_2023_api: the course's 2023 notebook (v3), whose identity_block has no `training`
  parameter; its identity_block test cell is that notebook's (it sets Keras' learning phase with
  `tf.keras.backend.set_learning_phase(False)` / `(True)` instead of passing `training`, and
  leaves it set to True for the rest of the notebook, as the course's cell does).
- legacy_keras_code: two extra cells with Keras 2 era idioms (see that function).
- correct_2024, wrong_shortcut_2024, wrong_stride_2024: the course's 2024 notebook (correct_2023_api's code), whose
  import cell no longer imports BatchNormalization from tensorflow.keras.layers: the name comes
  from `from resnets_utils import *`, the course's own layer of that version.

All outputs are cleared. The expected grading verdicts are in expected.toml next to this script;
keep the two in step. The output is deterministic: running the script again rewrites identical
files.
"""
import pathlib
import sys
import textwrap

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sample_builder import Template, changed, edit_cell, insert_cell, write_samples  # noqa: E402

# nbgrader grade_ids (course notebook Residual_Networks, stable across its versions)
SOLUTION_IDS = {
    "identity_block": "cell-0017b68317ffa974",
    "convolutional_block": "cell-df47af4847e5335f",
    "ResNet50": "cell-10dc95a4cf6275b9",
}
IDENTITY_BLOCK_TEST_ID = "cell-e73a8466b807e261"  # identity_block's test cell (a sample rewrites it)
TEMPLATE = Template(HERE.parent / "template.ipynb", SOLUTION_IDS,
                    start="### START CODE HERE", end="### END CODE HERE")

# ------------------------------------------------------------------------------------------------
# Correct, course-style code regions (v1 2021 API), written at indentation 0 (indented when filled).
CORRECT = {
    "identity_block": """
## Second component of the main path (≈3 lines)
X = Conv2D(filters = F2, kernel_size = f, strides = (1, 1), padding = 'same', kernel_initializer = initializer(seed=0))(X)
X = BatchNormalization(axis = 3)(X, training = training)
X = Activation('relu')(X)

## Third component of the main path (≈2 lines)
X = Conv2D(filters = F3, kernel_size = 1, strides = (1, 1), padding = 'valid', kernel_initializer = initializer(seed=0))(X)
X = BatchNormalization(axis = 3)(X, training = training)

## Final step: add the shortcut to the main path, then a RELU activation (≈2 lines)
X = Add()([X, X_shortcut])
X = Activation('relu')(X)
""",
    "convolutional_block": """
## Second component of the main path (≈3 lines)
X = Conv2D(filters = F2, kernel_size = f, strides = (1, 1), padding = 'same', kernel_initializer = initializer(seed=0))(X)
X = BatchNormalization(axis = 3)(X, training=training)
X = Activation('relu')(X)

## Third component of the main path (≈2 lines)
X = Conv2D(filters = F3, kernel_size = 1, strides = (1, 1), padding = 'valid', kernel_initializer = initializer(seed=0))(X)
X = BatchNormalization(axis = 3)(X, training=training)

##### SHORTCUT PATH ##### (≈2 lines)
X_shortcut = Conv2D(filters = F3, kernel_size = 1, strides = (s, s), padding = 'valid', kernel_initializer = initializer(seed=0))(X_shortcut)
X_shortcut = BatchNormalization(axis = 3)(X_shortcut, training=training)
""",
    "ResNet50": """
## Stage 3 (≈4 lines)
X = convolutional_block(X, f = 3, filters = [128, 128, 512], s = 2)
X = identity_block(X, 3, [128, 128, 512])
X = identity_block(X, 3, [128, 128, 512])
X = identity_block(X, 3, [128, 128, 512])

## Stage 4 (≈6 lines)
X = convolutional_block(X, f = 3, filters = [256, 256, 1024], s = 2)
X = identity_block(X, 3, [256, 256, 1024])
X = identity_block(X, 3, [256, 256, 1024])
X = identity_block(X, 3, [256, 256, 1024])
X = identity_block(X, 3, [256, 256, 1024])
X = identity_block(X, 3, [256, 256, 1024])

## Stage 5 (≈3 lines)
X = convolutional_block(X, f = 3, filters = [512, 512, 2048], s = 2)
X = identity_block(X, 3, [512, 512, 2048])
X = identity_block(X, 3, [512, 512, 2048])

## AVGPOOL (≈1 line). Use "X = AveragePooling2D(...)(X)"
X = AveragePooling2D((2, 2))(X)
""",
}


# ------------------------------------------------------------------------------------------------
def all_correct():
    """The template with every code region filled correctly."""
    return TEMPLATE.fill_all(TEMPLATE.load(), CORRECT)


def body_edit(name, old, new, count=1):
    """The correct code region of name with one textual change (old must occur count times)."""
    return changed(CORRECT[name], old, new, count)


# ------------------------------------------------------------------------------------------------
def sample_correct():
    return all_correct()


def sample_correct_2023_api():
    """The course's 2023 (v3) API: identity_block has no training parameter, BatchNormalization is
    called without training everywhere, ResNet50 takes training=False (and does not use it)."""
    nb = TEMPLATE.load()

    # identity_block: v3 signature, docstring and given first component.
    TEMPLATE.edit(nb, "identity_block",
                  "def identity_block(X, f, filters, training=True, initializer=random_uniform):",
                  "def identity_block(X, f, filters, initializer=random_uniform):")
    TEMPLATE.edit(nb, "identity_block",
                  "    training -- True: BatchNormalization uses the statistics of the batch (training mode)\n"
                  "                False: it uses its moving averages (inference mode)\n", "")
    TEMPLATE.edit(nb, "identity_block",
                  "X = BatchNormalization(axis = 3)(X, training = training) # axis 3: the channels",
                  "X = BatchNormalization(axis = 3)(X) # Default axis")
    TEMPLATE.fill(nb, "identity_block", body_edit(
        "identity_block", "BatchNormalization(axis = 3)(X, training = training)",
        "BatchNormalization(axis = 3)(X)", count=2))

    # convolutional_block: v3 keeps the training parameter, but the BN calls omit it.
    TEMPLATE.edit(nb, "convolutional_block",
                  "X = BatchNormalization(axis = 3)(X, training=training)",
                  "X = BatchNormalization(axis = 3)(X)")
    body = body_edit("convolutional_block", "BatchNormalization(axis = 3)(X, training=training)",
                     "BatchNormalization(axis = 3)(X)", count=2)
    body = body.replace("BatchNormalization(axis = 3)(X_shortcut, training=training)",
                        "BatchNormalization(axis = 3)(X_shortcut)")
    assert "training" not in body
    TEMPLATE.fill(nb, "convolutional_block", body)

    # ResNet50: v3 signature.
    TEMPLATE.edit(nb, "ResNet50",
                  "def ResNet50(input_shape = (64, 64, 3), classes = 6):",
                  "def ResNet50(input_shape = (64, 64, 3), classes = 6, training=False):")
    TEMPLATE.edit(nb, "ResNet50",
                  "    classes -- integer, number of classes\n",
                  "    classes -- integer, number of classes\n"
                  "    training -- boolean, whether the model is being trained\n")
    TEMPLATE.fill(nb, "ResNet50", CORRECT["ResNet50"])

    # The v3 notebook's identity_block test cell: no training argument, the learning phase is set
    # instead (and left at True afterwards, as in the course).
    test = nb.cells[TEMPLATE.cell_index(nb, IDENTITY_BLOCK_TEST_ID)]
    test.source = textwrap.dedent("""
        tf.keras.backend.set_learning_phase(False)

        np.random.seed(1)
        tf.random.set_seed(2)
        X1 = np.ones((1, 4, 4, 3)) * -1
        X2 = np.ones((1, 4, 4, 3)) * 1
        X3 = np.ones((1, 4, 4, 3)) * 3

        X = np.concatenate((X1, X2, X3), axis = 0).astype(np.float32)

        A3 = identity_block(X, f=2, filters=[4, 4, 3],
                            initializer=lambda seed=0:constant(value=1))
        print('\\033[1mWith training=False\\033[0m\\n')
        A3np = A3.numpy()
        print(np.around(A3.numpy()[:,(0,-1),:,:].mean(axis = 3), 5))
        resume = A3np[:,(0,-1),:,:].mean(axis = 3)
        print(resume[1, 1, 0])

        tf.keras.backend.set_learning_phase(True)

        print('\\n\\033[1mWith training=True\\033[0m\\n')
        np.random.seed(1)
        tf.random.set_seed(2)
        A4 = identity_block(X, f=2, filters=[3, 3, 3],
                            initializer=lambda seed=0:constant(value=1))
        print(np.around(A4.numpy()[:,(0,-1),:,:].mean(axis = 3), 5))

        public_tests.identity_block_test(identity_block)
        """).strip("\n")
    return nb


def sample_wrong_shortcut():
    """identity_block adds the main path to itself (Add()([X, X])): the shortcut is dropped.
    Shapes and the layer list are unchanged, so the notebook's ResNet50 comparator still passes."""
    nb = all_correct()
    TEMPLATE.fill(nb, "identity_block", body_edit("identity_block", "X = Add()([X, X_shortcut])", "X = Add()([X, X])"))
    return nb


def sample_missing_batchnorm():
    """identity_block's second component has no BatchNormalization (Conv2D -> ReLU)."""
    nb = all_correct()
    old = ("## Second component of the main path (≈3 lines)\n"
           "X = Conv2D(filters = F2, kernel_size = f, strides = (1, 1), padding = 'same', kernel_initializer = initializer(seed=0))(X)\n"
           "X = BatchNormalization(axis = 3)(X, training = training)\n")
    body = body_edit("identity_block", old, old.rsplit("X = BatchNormalization", 1)[0])
    TEMPLATE.fill(nb, "identity_block", body)
    return nb


def sample_wrong_stride():
    """convolutional_block's shortcut convolution uses stride (1, 1) instead of (s, s)."""
    nb = all_correct()
    TEMPLATE.fill(nb, "convolutional_block", body_edit(
        "convolutional_block",
        "X_shortcut = Conv2D(filters = F3, kernel_size = 1, strides = (s, s)",
        "X_shortcut = Conv2D(filters = F3, kernel_size = 1, strides = (1, 1)"))
    return nb


def sample_wrong_initializer():
    """convolutional_block's first convolution (given code, edited by the student) uses
    random_uniform(seed=0) instead of initializer(seed=0) (glorot_uniform by default)."""
    nb = all_correct()
    TEMPLATE.edit(nb, "convolutional_block",
                  "X = Conv2D(filters = F1, kernel_size = 1, strides = (s, s), padding='valid', kernel_initializer = initializer(seed=0))(X)",
                  "X = Conv2D(filters = F1, kernel_size = 1, strides = (s, s), padding='valid', kernel_initializer = random_uniform(seed=0))(X)")
    return nb


def sample_legacy_keras_code():
    """Correct code written with Keras 2 era idioms, each of which still runs under TF 2.21 with
    tf_keras (TF_USE_LEGACY_KERAS=1):

    - an extra cell after the imports: `from tensorflow.python.keras import backend as K` (the
      private pre-2.6 Keras copy, still shipped by TensorFlow; only its backend helpers are used),
      `K.set_image_data_format('channels_last')`, and imports of `Convolution2D` and `add`;
    - Convolution2D (the Keras 1 name of Conv2D) with positional filters and kernel size,
      BatchNormalization with its defaults spelled out, and the functional `add([...])` instead of
      `Add()([...])`;
    - an extra cell after the model summary printing `layer.input_shape`, `layer.output_shape`,
      `model.output_shape`, `K.int_shape(...)` and `get_output_at(0).get_shape().as_list()`.

    Idioms that do NOT work here are left out (see expected.toml)."""
    nb = TEMPLATE.load()

    insert_cell(nb, TEMPLATE.cell_index_by_id(nb, "imports") + 1, """
        # Keras 2 style setup, kept from an older version of this notebook
        from tensorflow.python.keras import backend as K
        from tensorflow.keras.layers import Convolution2D, add
        K.set_image_data_format('channels_last')
        print(K.image_data_format())
        """, "legacy-setup")

    TEMPLATE.fill(nb, "identity_block", """
        # Second component of main path
        X = Convolution2D(F2, (f, f), strides=(1, 1), padding='same', kernel_initializer=initializer(seed=0))(X)
        X = BatchNormalization(axis=3, momentum=0.99, epsilon=0.001)(X, training=training)
        X = Activation('relu')(X)

        # Third component of main path
        X = Convolution2D(F3, (1, 1), strides=(1, 1), padding='valid', kernel_initializer=initializer(seed=0))(X)
        X = BatchNormalization(axis=3, momentum=0.99, epsilon=0.001)(X, training=training)

        # Final step
        X = add([X, X_shortcut])
        X = Activation('relu')(X)
        """)
    TEMPLATE.fill(nb, "convolutional_block", """
        # Second component of main path
        X = Convolution2D(F2, (f, f), strides=(1, 1), padding='same', kernel_initializer=initializer(seed=0))(X)
        X = BatchNormalization(axis=3, momentum=0.99, epsilon=0.001)(X, training=training)
        X = Activation('relu')(X)

        # Third component of main path
        X = Convolution2D(F3, (1, 1), strides=(1, 1), padding='valid', kernel_initializer=initializer(seed=0))(X)
        X = BatchNormalization(axis=3, momentum=0.99, epsilon=0.001)(X, training=training)

        # Shortcut path
        X_shortcut = Convolution2D(F3, (1, 1), strides=(s, s), padding='valid', kernel_initializer=initializer(seed=0))(X_shortcut)
        X_shortcut = BatchNormalization(axis=3, momentum=0.99, epsilon=0.001)(X_shortcut, training=training)
        """)
    TEMPLATE.fill(nb, "ResNet50", CORRECT["ResNet50"])

    insert_cell(nb, TEMPLATE.cell_index_by_id(nb, "resnet50-summary") + 1, """
        # Keras 2 style shape checks
        for layer in model.layers[:6]:
            print(layer.name, layer.input_shape, layer.output_shape, layer.count_params())
        print(model.output_shape)
        print(K.int_shape(model.output), model.layers[-1].get_output_at(0).get_shape().as_list())
        """, "legacy-shapes")
    return nb


def sample_template_unfilled():
    return TEMPLATE.load()


# ------------------------------------------------------------------------------------------------
# The 2024 version (docs/course_facts.md §4.1, "Later variant with the course's own
# BatchNormalization"): the import cell no longer imports BatchNormalization from
# tensorflow.keras.layers; the name comes from `from resnets_utils import *` (the course's own
# layer, exercises/resnet50/helpers_2024/resnets_utils.py). Block signatures as in 2023 (v3).
KERAS_IMPORT = ("from tensorflow.keras.layers import Input, Add, Dense, Activation, ZeroPadding2D, "
                "BatchNormalization, Flatten, Conv2D, AveragePooling2D, MaxPooling2D, GlobalMaxPooling2D")


def as_2024(nb):
    """The notebook with the 2024 import cell: BatchNormalization only from resnets_utils."""
    edit_cell(nb.cells[TEMPLATE.cell_index_by_id(nb, "imports")], KERAS_IMPORT,
              KERAS_IMPORT.replace("BatchNormalization, ", ""))
    return nb


def sample_correct_2024():
    """Correct 2024 notebook: the 2023 (v3) code with the 2024 imports."""
    return as_2024(sample_correct_2023_api())


def sample_wrong_shortcut_2024():
    """2024 notebook whose identity_block adds the main path to itself (Add()([X, X]))."""
    nb = sample_correct_2023_api()
    TEMPLATE.fill(nb, "identity_block", body_edit(
        "identity_block", "BatchNormalization(axis = 3)(X, training = training)",
        "BatchNormalization(axis = 3)(X)", count=2).replace("X = Add()([X, X_shortcut])", "X = Add()([X, X])"))
    return as_2024(nb)


def sample_wrong_stride_2024():
    """2024 notebook whose convolutional_block shortcut uses stride (1, 1) instead of (s, s)."""
    nb = sample_correct_2023_api()
    body = body_edit("convolutional_block", "BatchNormalization(axis = 3)(X, training=training)",
                     "BatchNormalization(axis = 3)(X)", count=2)
    body = body.replace("BatchNormalization(axis = 3)(X_shortcut, training=training)",
                        "BatchNormalization(axis = 3)(X_shortcut)")
    body = changed(body, "X_shortcut = Conv2D(filters = F3, kernel_size = 1, strides = (s, s)",
                   "X_shortcut = Conv2D(filters = F3, kernel_size = 1, strides = (1, 1)", 1)
    TEMPLATE.fill(nb, "convolutional_block", body)
    return as_2024(nb)


NOTEBOOK_SAMPLES = {
    "correct": sample_correct,
    "correct_2023_api": sample_correct_2023_api,
    "wrong_shortcut": sample_wrong_shortcut,
    "missing_batchnorm": sample_missing_batchnorm,
    "wrong_stride": sample_wrong_stride,
    "wrong_initializer": sample_wrong_initializer,
    "legacy_keras_code": sample_legacy_keras_code,
    "template_unfilled": sample_template_unfilled,
    "correct_2024": sample_correct_2024,
    "wrong_shortcut_2024": sample_wrong_shortcut_2024,
    "wrong_stride_2024": sample_wrong_stride_2024,
}


if __name__ == "__main__":
    write_samples(HERE, NOTEBOOK_SAMPLES)
