"""Public tests called from the 2024 Residual_Networks notebook, whose BatchNormalization is the
course's own layer (resnets_utils.py beside this file; docs/course_facts.md §4.1, "Later variant
with the course's own BatchNormalization").

The tests of helpers/public_tests.py (course test-suite v1, 2021) with the expected numbers of the
2024 layer (epsilon 1e-6 instead of Keras's 1e-3), computed with reference/resnet50.py built with
exercises/resnet50/trusted_layers_2024.py on the tests' inputs (the course published no numbers
for this version; its tests printed "All tests passed" for correct notebooks). The rest is as
there:

They run inside the student's kernel and only give feedback; grading happens elsewhere, on other
inputs. Each test prints "All tests passed!" on success and raises AssertionError otherwise.

Both blocks are tested on the course's batch of three constant images (all -1, all 1, all 3; shape
(3, 4, 4, 3), float32), with the numbers of the 2024 layer (above), compared with
``np.allclose(..., atol=1e-5)``.

Two signatures are accepted, as the course changed its notebook:

* v1 (2021): ``identity_block(X, f, filters, training=True, initializer=random_uniform)``; the test
  passes ``training=False`` / ``training=True``.
* v3 (2023): ``identity_block(X, f, filters, initializer=random_uniform)`` with no ``training``
  argument, BatchNormalization called without ``training``; the course then set Keras' learning
  phase instead. These tests do both: ``training`` is passed when the function takes it, and the
  call runs inside ``tf.keras.backend.learning_phase_scope`` with the same value, which is
  restored afterwards (unlike the course's ``set_learning_phase``, this leaves the notebook's
  learning phase as it was).
"""
import contextlib
import inspect
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.keras.initializers import constant
from tensorflow.python.framework.ops import EagerTensor


__all__ = ["identity_block_test", "convolutional_block_test"]

GREEN = "\033[92m"
RED = "\033[91m"
RESET = "\033[0m"

ATOL = 1e-5

# resume = A[:, (0, -1), :, :].mean(axis=3): per image, the first and last rows averaged over the
# channels. Values of the 2024 layer.
IDENTITY_RESUME_TRAINING_FALSE = np.array([
    [[0.0, 0.0, 0.0, 0.0],
     [0.0, 0.0, 0.0, 0.0]],
    [[192.99974, 192.99974, 192.99974, 96.999855],
     [96.999855, 96.999855, 96.999855, 48.999928]],
    [[578.9994, 578.9994, 578.9994, 290.99963],
     [290.99963, 290.99963, 290.99963, 146.99982]],
])

IDENTITY_RESUME_TRAINING_TRUE = np.array([
    [[0.0, 0.0, 0.0, 0.0],
     [0.0, 0.0, 0.0, 0.0]],
    [[0.37387407, 0.37387407, 0.37387407, 0.37387407],
     [0.37387407, 0.37387407, 0.37387407, 0.37387407]],
    [[3.2379277, 4.1395493, 4.1395493, 3.2379277],
     [3.2379277, 4.1395493, 4.1395493, 3.2379277]],
])

# convolutional_block(X, f=2, filters=[2, 4, 6]) (glorot_uniform(seed=0)), training False / True.
convolutional_block_output1 = [
    [[[0.0, 0.6671857, 0.0, 0.0, 0.8889749, 0.5277148], [0.0, 0.6508597, 0.0, 0.0, 0.8963755, 0.4999001]], [[0.0, 0.631502, 0.0, 0.0, 0.8640233, 0.4766445], [0.0, 0.5690327, 0.0, 0.0, 0.8557273, 0.4172171]]],
    [[[1.0963073, 0.0, 1.5776702, 0.6271827, 0.0, 0.0], [1.3610266, 0.0, 1.6089973, 0.654112, 0.0, 0.0]], [[0.5000281, 0.0, 0.9452662, 0.6641123, 0.0, 0.0], [0.9820249, 0.0, 1.0739391, 0.6017271, 0.0, 0.0]]],
    [[[3.2889218, 0.0, 4.7330108, 1.881548, 0.0, 0.0], [4.0830798, 0.0, 4.826992, 1.9623358, 0.0, 0.0]], [[1.5000842, 0.0, 2.8357987, 1.9923366, 0.0, 0.0], [2.9460745, 0.0, 3.2218175, 1.8051813, 0.0, 0.0]]],
]

convolutional_block_output2 = [
    [[[0.0, 2.7857499, 0.0, 0.0, 1.6972308, 2.8261633], [0.0, 1.5450848, 0.0, 0.0, 2.1773622, 1.3912168]], [[0.0, 1.9407238, 0.0, 0.0, 1.4775755, 1.9165103], [0.0, 0.0, 0.0, 0.99922, 1.1174141, 0.0]]],
    [[[0.0, 0.4081062, 0.0, 0.6106534, 0.6212574, 0.4386517], [0.0, 0.4081062, 0.0, 0.6106534, 0.6212574, 0.4386517]], [[0.0, 0.4081062, 0.0, 0.6106534, 0.6212574, 0.4386517], [0.0, 0.4081062, 0.0, 0.6106534, 0.6212574, 0.4386517]]],
    [[[2.6178637, 0.0, 2.7530782, 0.0, 0.0, 0.0], [3.4506841, 0.0, 2.7303648, 0.0280061, 0.0, 0.0]], [[0.9835123, 0.0, 1.6579562, 0.9598923, 0.0, 0.0], [2.5493774, 0.0, 1.1278535, 0.0, 0.0, 0.0]]],
]


def _batch():
    """The tests' input: three 4x4x3 images filled with -1, 1 and 3 (float32)."""
    X1 = np.ones((1, 4, 4, 3)) * -1
    X2 = np.ones((1, 4, 4, 3)) * 1
    X3 = np.ones((1, 4, 4, 3)) * 3
    return np.concatenate((X1, X2, X3), axis=0).astype(np.float32)


def _takes_training(target):
    """True when target accepts a ``training`` keyword (v1 API) or any keyword (**kwargs)."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "training" or p.kind == p.VAR_KEYWORD for p in parameters)


@contextlib.contextmanager
def _learning_phase(value):
    """Keras' learning phase set to value (0 or 1) inside the block, restored afterwards."""
    scope = getattr(tf.keras.backend, "learning_phase_scope", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # learning_phase_scope is deprecated (still works in tf_keras)
        if scope is None:
            yield
        else:
            with scope(value):
                yield


def _call(target, X, training, **kwargs):
    """target(X, **kwargs) in the given mode, with or without the training argument."""
    with _learning_phase(1 if training else 0):
        if _takes_training(target):
            return target(X, training=training, **kwargs)
        return target(X, **kwargs)


def _as_array(result, name):
    """The result as a numpy array; a clear AssertionError for None or a non-tensor."""
    if result is None:
        raise AssertionError(
            "{} returned None. Did you replace every `X = None` between START CODE HERE and "
            "END CODE HERE, and does the function end with `return X`?".format(name))
    if not hasattr(result, "numpy"):
        raise AssertionError(
            "{} must return a TensorFlow tensor (built with Keras layers), got {}".format(
                name, type(result).__name__))
    return np.asarray(result.numpy())


def _fail(message):
    print(RED + message + RESET)
    raise AssertionError(message)


def identity_block_test(target):
    """Test of identity_block (2024 layer): shapes, final ReLU, padding, BatchNormalization, values."""
    X = _batch()

    np.random.seed(1)
    A3 = _call(target, X, training=False, f=2, filters=[4, 4, 3],
               initializer=lambda seed=0: constant(value=1))
    A3np = _as_array(A3, "identity_block")

    if tuple(A3np.shape) != (3, 4, 4, 3):
        _fail("Wrong shape: expected (3, 4, 4, 3), got {}. The identity block keeps the shape of "
              "its input.".format(tuple(A3np.shape)))
    if not np.all(A3np >= 0):
        _fail("Negative values in the output: the ReLU activation after the Add is missing.")
    resume = A3np[:, (0, -1), :, :].mean(axis=3)

    if not (np.floor(resume[1, 0, 0]) == 2 * np.floor(resume[1, 0, 3])
            and np.floor(resume[1, 0, 3]) == np.floor(resume[1, 1, 0])
            and np.floor(resume[1, 1, 0]) == 2 * np.floor(resume[1, 1, 3])):
        _fail("Check the padding and the strides of the convolutions (the second one is 'same', "
              "the others 'valid'; every stride is 1).")
    if not resume[1, 1, 0] - np.floor(resume[1, 1, 0]) > 0.7:
        _fail("Looks like the BatchNormalization layers are not working (is one missing, or "
              "called on the wrong tensor?).")
    if not np.allclose(resume, IDENTITY_RESUME_TRAINING_FALSE, atol=ATOL):
        _fail("Wrong values with training=False.\nExpected (first and last rows, averaged over "
              "channels):\n{}\nGot:\n{}".format(IDENTITY_RESUME_TRAINING_FALSE, resume))

    np.random.seed(1)
    A4 = _call(target, X, training=True, f=3, filters=[3, 3, 3],
               initializer=lambda seed=7: constant(value=1))
    A4np = _as_array(A4, "identity_block")
    if tuple(A4np.shape) != (3, 4, 4, 3):
        _fail("Wrong shape with f=3: expected (3, 4, 4, 3), got {}.".format(tuple(A4np.shape)))
    resume = A4np[:, (0, -1), :, :].mean(axis=3)
    if not np.allclose(resume, IDENTITY_RESUME_TRAINING_TRUE, atol=ATOL):
        _fail("Wrong values with training=True.\nExpected:\n{}\nGot:\n{}".format(
            IDENTITY_RESUME_TRAINING_TRUE, resume))

    print(GREEN + "All tests passed!" + RESET)


def convolutional_block_test(target):
    """Test of convolutional_block (2024 layer): eager tensor, shape, values in both modes."""
    X = _batch()

    np.random.seed(1)
    A = _call(target, X, training=False, f=2, filters=[2, 4, 6])
    if A is not None and not isinstance(A, EagerTensor):
        _fail("convolutional_block must return the tensor computed by Keras layers (an "
              "EagerTensor when called on an array), got {}. Use only TensorFlow and Keras "
              "functions.".format(type(A).__name__))
    Anp = _as_array(A, "convolutional_block")
    if tuple(Anp.shape) != (3, 2, 2, 6):
        _fail("Wrong shape: expected (3, 2, 2, 6), got {}. Check the strides: the first "
              "convolution of the main path and the shortcut's convolution both use (s, s)."
              .format(tuple(Anp.shape)))
    expected = np.array(convolutional_block_output1)
    if not np.allclose(Anp, expected, atol=ATOL):
        _fail("Wrong values when training=False.\nExpected, first image:\n{}\nGot:\n{}".format(
            expected[0], Anp[0]))

    np.random.seed(1)
    B = _call(target, X, training=True, f=2, filters=[2, 4, 6])
    Bnp = _as_array(B, "convolutional_block")
    expected = np.array(convolutional_block_output2)
    if tuple(Bnp.shape) != expected.shape or not np.allclose(Bnp, expected, atol=ATOL):
        _fail("Wrong values when training=True.\nExpected, first image:\n{}\nGot:\n{}".format(
            expected[0], Bnp[0] if Bnp.ndim == 4 else Bnp))

    print(GREEN + "All tests passed!" + RESET)
