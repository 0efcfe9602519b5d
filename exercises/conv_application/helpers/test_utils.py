"""Model-summary helpers the Convolution_model_Application notebook imports (``from test_utils import summary, comparator``).

They run inside the student's kernel and only give feedback in the notebook; they are not the
grader. (The Residual_Networks exercise's helpers/test_utils.py, copied: both notebooks import
the same course module; this copy also says so when a Sequential model is not built yet.)

summary(model)
    One entry per layer of ``model.layers``:
    ``[class name, layer.output_shape, layer.count_params()]`` followed by a few settings that
    depend on the layer's class (exact class, not subclasses):

    ============== =====================================================
    Conv2D         padding, activation name, kernel initializer class name
    MaxPooling2D   pool_size, strides, padding
    Dropout        rate
    ZeroPadding2D  padding
    Dense          activation name
    ============== =====================================================

    As in the course, the model is compiled first (adam, categorical cross-entropy), which does
    not change any entry.

comparator(learner, instructor)
    Checks the number of layers first, then compares the entries one by one. At the first
    difference it prints the expected and the actual entry and raises
    ``AssertionError("Error in test")``. Prints "All tests passed!" when everything matches.

The summaries are Keras 2 summaries (``layer.output_shape``): run the notebook with
``TF_USE_LEGACY_KERAS=1`` so that ``tensorflow.keras`` is tf_keras. Keras 3 layers have no
``output_shape``; summary() then says so instead of failing with an AttributeError.
"""
from tensorflow.keras.layers import Conv2D, Dense, Dropout, MaxPooling2D, ZeroPadding2D

GREEN = "\033[92m"
RED = "\033[91m"
BOLD = "\033[1m"
RESET = "\033[0m"


def summary(model):
    """Per-layer description of a Keras 2 model, as a list of lists (see the module docstring)."""
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    if model.layers and not getattr(model, "built", True):
        # A Sequential whose first layer has no input_shape: its layers have no output shape yet.
        raise ValueError(
            "the model is not built yet, so its layers have no output shape: give the first layer "
            "of the Sequential its input shape, e.g. input_shape=(64, 64, 3)")
    result = []
    for layer in model.layers:
        if not hasattr(layer, "output_shape"):
            raise AttributeError(
                "layer {!r} has no output_shape: this looks like a Keras 3 model. The course's "
                "notebooks need Keras 2 (tf_keras): restart the kernel with TF_USE_LEGACY_KERAS=1 "
                "set before TensorFlow is imported.".format(layer.name))
        descriptors = [layer.__class__.__name__, layer.output_shape, layer.count_params()]
        kind = type(layer)
        if kind == Conv2D:
            descriptors.append(layer.padding)
            descriptors.append(layer.activation.__name__)
            descriptors.append(layer.kernel_initializer.__class__.__name__)
        if kind == MaxPooling2D:
            descriptors.append(layer.pool_size)
            descriptors.append(layer.strides)
            descriptors.append(layer.padding)
        if kind == Dropout:
            descriptors.append(layer.rate)
        if kind == ZeroPadding2D:
            descriptors.append(layer.padding)
        if kind == Dense:
            descriptors.append(layer.activation.__name__)
        result.append(descriptors)
    return result


def comparator(learner, instructor):
    """Compare two summaries; raise AssertionError at the first difference."""
    if len(learner) != len(instructor):
        print(BOLD + RED + "Test failed" + RESET)
        print(" The model has {} layers, expected {}.".format(len(learner), len(instructor)))
        raise AssertionError(
            "The number of layers in the model is incorrect. Expected: {} Found: {}".format(
                len(instructor), len(learner)))
    for index, (a, b) in enumerate(zip(learner, instructor)):
        if tuple(a) != tuple(b):
            print(BOLD + "Test failed" + RESET + " (layer {} of {})".format(index, len(instructor)),
                  "\n Expected value \n\n", GREEN + "{}".format(b) + RESET,
                  "\n\n does not match the input value: \n\n", RED + "{}".format(a) + RESET)
            raise AssertionError("Error in test")
    print(GREEN + "All tests passed!" + RESET)
