"""Reference for W1A1 "Convolution_model_Step_by_Step" (NumPy, NHWC layout).

Same function names, signatures, return values and caches as the course notebook, so the grader can
feed a student's function and this one the same inputs and compare the results (see
docs/course_facts.md, section 2). Everything is computed in float64 and vectorized: the only
Python loops run over the f*f filter offsets and over cache-sized blocks of the im2col matrix, never
over examples, pixels or channels.

Deliberate differences from the course's loop solution, all on inputs where that solution is wrong or
undefined:

* conv_backward with pad == 0 returns the true gradient. The course's
  ``da_prev_pad[pad:-pad, pad:-pad, :]`` is ``[0:-0]``, an empty slice, for pad 0.
* A filter/window larger than the (padded) input raises ValueError. The course's
  ``int((n_H_prev - f + 2*pad) / stride) + 1`` truncates toward zero and then claims one output row
  that does not fit; where the window fits it equals the floor formula used here.
* An unknown pooling mode raises ValueError (the course silently returns zeros).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
PoolMode = Literal["max", "average"]

__all__ = [
    "zero_pad",
    "conv_single_step",
    "conv_forward",
    "pool_forward",
    "conv_backward",
    "create_mask_from_window",
    "distribute_value",
    "pool_backward",
]

# Values per im2col block (8 MiB of float64). One GEMM over the whole batch is ~2x slower than
# GEMMs over blocks this size, which stay in cache; measured on (32,64,64,32) * (3,3,32,64).
_BLOCK_ELEMENTS = 1 << 20


# --------------------------------------------------------------------------- private helpers


def _as_f64(x: ArrayLike) -> Array:
    """x as a float64 ndarray (the same object when it already is one, so caches keep identity)."""
    return np.asarray(x, dtype=np.float64)


def _require_4d(name: str, x: Array) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (m, n_H, n_W, n_C), got shape {x.shape}")


def _output_size(n_in: int, f: int, stride: int, pad: int = 0) -> int:
    """floor((n_in - f + 2*pad) / stride) + 1, refusing windows that do not fit."""
    if f < 1 or stride < 1 or pad < 0:
        raise ValueError(f"need f >= 1, stride >= 1, pad >= 0; got f={f}, stride={stride}, pad={pad}")
    span = n_in + 2 * pad - f
    if span < 0:
        raise ValueError(f"window of size {f} does not fit an input of size {n_in} padded by {pad}")
    return span // stride + 1


def _taps(offset: int, first_out: int, stop_out: int, stride: int) -> slice:
    """Input positions read by filter offset `offset` for outputs first_out..stop_out-1."""
    return slice(first_out * stride + offset, (stop_out - 1) * stride + offset + 1, stride)


def _blocks(m: int, n_H: int, row_values: int) -> Iterator[tuple[slice, slice]]:
    """(examples, output rows) blocks whose im2col matrix holds about _BLOCK_ELEMENTS values.

    Either several whole examples, or a run of rows of one example; in both cases the matching
    part of an (m, n_H, ...) C-ordered array is contiguous.
    """
    rows = max(1, _BLOCK_ELEMENTS // max(1, row_values))
    if rows >= n_H:
        step = max(1, rows // max(1, n_H))
        for e in range(0, m, step):
            yield slice(e, min(e + step, m)), slice(0, n_H)
    else:
        for e in range(m):
            for r in range(0, n_H, rows):
                yield slice(e, e + 1), slice(r, min(r + rows, n_H))


def _scratch(buffer: Array, shape: tuple[int, ...]) -> tuple[Array, Array]:
    """A C-contiguous (shape) array carved from buffer, which is grown if needed and returned.

    Reusing one buffer across blocks avoids re-faulting fresh pages for every block.
    """
    size = int(np.prod(shape))
    if buffer.size < size:
        buffer = np.empty(size)
    return buffer, buffer[:size].reshape(shape)


def _im2col(A_pad: Array, ex: slice, rows: slice, f: int, stride: int, n_W: int, out: Array) -> None:
    """Fill out[k, r, w, i, j, c] = A_pad[ex][k, (rows.start + r)*stride + i, w*stride + j, c]."""
    for i in range(f):
        hs = _taps(i, rows.start, rows.stop, stride)
        for j in range(f):
            out[:, :, :, i, j, :] = A_pad[ex, hs, _taps(j, 0, n_W, stride), :]


def _col2im_add(cols: Array, A_pad: Array, ex: slice, rows: slice, f: int, stride: int, n_W: int) -> None:
    """Adjoint of _im2col: scatter-add cols back onto A_pad (overlapping windows accumulate).

    For one offset (i, j) the target positions are distinct, so the in-place += is safe.
    """
    for i in range(f):
        hs = _taps(i, rows.start, rows.stop, stride)
        for j in range(f):
            A_pad[ex, hs, _taps(j, 0, n_W, stride), :] += cols[:, :, :, i, j, :]


def _conv_geometry(A_prev: Array, W: Array, hparameters: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Validate conv inputs; return (stride, pad, n_H, n_W)."""
    _require_4d("A_prev", A_prev)
    _require_4d("W", W)
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"W must be square (f, f, n_C_prev, n_C), got shape {W.shape}")
    if W.shape[2] != A_prev.shape[3]:
        raise ValueError(f"W expects {W.shape[2]} input channels, A_prev has {A_prev.shape[3]}")
    stride, pad, f = int(hparameters["stride"]), int(hparameters["pad"]), W.shape[0]
    n_H = _output_size(A_prev.shape[1], f, stride, pad)
    n_W = _output_size(A_prev.shape[2], f, stride, pad)
    return stride, pad, n_H, n_W


def _pool_geometry(A_prev: Array, hparameters: Mapping[str, Any], mode: str) -> tuple[int, int, int, int]:
    """Validate pool inputs; return (f, stride, n_H, n_W)."""
    _require_4d("A_prev", A_prev)
    if mode not in ("max", "average"):
        raise ValueError(f'mode must be "max" or "average", got {mode!r}')
    f, stride = int(hparameters["f"]), int(hparameters["stride"])
    return f, stride, _output_size(A_prev.shape[1], f, stride), _output_size(A_prev.shape[2], f, stride)


# --------------------------------------------------------------------------- forward pass


def zero_pad(X: ArrayLike, pad: int) -> Array:
    """Pad height and width of a batch (m, n_H, n_W, n_C) of images with `pad` zeros on each side."""
    X = _as_f64(X)
    _require_4d("X", X)
    pad = int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="constant", constant_values=0.0)


def conv_single_step(a_slice_prev: ArrayLike, W: ArrayLike, b: ArrayLike) -> np.float64:
    """One filter on one window: sum(a_slice_prev * W) + b, as an np.float64 scalar.

    The course asserts ``type(Z) == np.float64``. b is read with reshape(()), not float(b),
    which numpy 2.4 rejects for a (1, 1, 1) array.
    """
    a, w, bias = _as_f64(a_slice_prev), _as_f64(W), _as_f64(b)
    if a.shape != w.shape:
        raise ValueError(f"a_slice_prev {a.shape} and W {w.shape} must have the same shape")
    if bias.size != 1:
        raise ValueError(f"b must hold a single value, got shape {bias.shape}")
    return np.float64(np.sum(a * w) + bias.reshape(()))


def conv_forward(
    A_prev: ArrayLike, W: ArrayLike, b: ArrayLike, hparameters: Mapping[str, Any]
) -> tuple[Array, tuple[Array, Array, Array, Mapping[str, Any]]]:
    """Convolve A_prev (m, n_H_prev, n_W_prev, n_C_prev) with W (f, f, n_C_prev, n_C) plus b.

    Returns (Z, cache) with cache = (A_prev, W, b, hparameters) and A_prev *unpadded*, as the
    course (its v2/v3 tests check cache[0] against the raw input).
    """
    A_prev, W, b = _as_f64(A_prev), _as_f64(W), _as_f64(b)
    stride, pad, n_H, n_W = _conv_geometry(A_prev, W, hparameters)
    m, f, n_C_prev, n_C = A_prev.shape[0], W.shape[0], W.shape[2], W.shape[3]
    if b.size != n_C:
        raise ValueError(f"b must hold n_C={n_C} values (shape (1, 1, 1, n_C)), got shape {b.shape}")

    A_pad = zero_pad(A_prev, pad)
    k_len = f * f * n_C_prev
    W_col = W.reshape(k_len, n_C)
    Z = np.empty((m, n_H, n_W, n_C))
    buffer = np.empty(0)
    for ex, rows in _blocks(m, n_H, n_W * k_len):
        shape = (ex.stop - ex.start, rows.stop - rows.start, n_W)
        buffer, cols = _scratch(buffer, shape + (f, f, n_C_prev))
        _im2col(A_pad, ex, rows, f, stride, n_W, cols)
        Z[ex, rows] = (cols.reshape(-1, k_len) @ W_col).reshape(shape + (n_C,))
    Z += b.reshape(n_C)
    return Z, (A_prev, W, b, hparameters)


def pool_forward(
    A_prev: ArrayLike, hparameters: Mapping[str, Any], mode: PoolMode = "max"
) -> tuple[Array, tuple[Array, Mapping[str, Any]]]:
    """Max or average pooling with window f and stride, no padding; returns (A, (A_prev, hparameters))."""
    A_prev = _as_f64(A_prev)
    f, stride, n_H, n_W = _pool_geometry(A_prev, hparameters, mode)
    A = np.empty((A_prev.shape[0], n_H, n_W, A_prev.shape[3]))
    for i in range(f):
        for j in range(f):
            tap = A_prev[:, _taps(i, 0, n_H, stride), _taps(j, 0, n_W, stride), :]
            if i == 0 and j == 0:
                A[...] = tap
            elif mode == "max":
                np.maximum(A, tap, out=A)  # propagates NaN like np.max over the window
            else:
                A += tap
    if mode == "average":
        A /= f * f
    return A, (A_prev, hparameters)


# --------------------------------------------------------------------------- backward pass


def conv_backward(
    dZ: ArrayLike, cache: tuple[ArrayLike, ArrayLike, ArrayLike, Mapping[str, Any]]
) -> tuple[Array, Array, Array]:
    """Gradients (dA_prev, dW, db) of the cost w.r.t. conv_forward's inputs, given dZ and its cache.

    Shapes: dA_prev like A_prev, dW like W, db (1, 1, 1, n_C). Correct for pad == 0 too, where
    the course's ``da_prev_pad[pad:-pad, pad:-pad, :]`` would be empty: here the padding is cropped
    with ``[pad:pad + n_H_prev]``, which for pad 0 is the whole (un-padded) gradient.
    """
    A_prev, W = _as_f64(cache[0]), _as_f64(cache[1])
    dZ = _as_f64(dZ)
    stride, pad, n_H, n_W = _conv_geometry(A_prev, W, cache[3])
    m, n_H_prev, n_W_prev = A_prev.shape[:3]
    f, n_C_prev, n_C = W.shape[0], W.shape[2], W.shape[3]
    if dZ.shape != (m, n_H, n_W, n_C):
        raise ValueError(f"dZ must have shape {(m, n_H, n_W, n_C)}, got {dZ.shape}")

    A_pad = zero_pad(A_prev, pad)
    dA_pad = np.zeros_like(A_pad)
    k_len = f * f * n_C_prev
    W_col = W.reshape(k_len, n_C)
    dW_col = np.zeros((k_len, n_C))
    buffer = np.empty(0)
    for ex, rows in _blocks(m, n_H, n_W * k_len):
        shape = (ex.stop - ex.start, rows.stop - rows.start, n_W)
        buffer, cols = _scratch(buffer, shape + (f, f, n_C_prev))
        cols_2d = cols.reshape(-1, k_len)  # a view: cols is a C-contiguous prefix of the buffer
        dz_2d = dZ[ex, rows].reshape(-1, n_C)
        _im2col(A_pad, ex, rows, f, stride, n_W, cols)
        dW_col += cols_2d.T @ dz_2d
        np.matmul(dz_2d, W_col.T, out=cols_2d)  # reuse the buffer for d(cols)
        _col2im_add(cols, dA_pad, ex, rows, f, stride, n_W)

    dA_prev = np.ascontiguousarray(dA_pad[:, pad : pad + n_H_prev, pad : pad + n_W_prev, :])
    dW = dW_col.reshape(f, f, n_C_prev, n_C)
    db = dZ.sum(axis=(0, 1, 2)).reshape(1, 1, 1, n_C)
    return dA_prev, dW, db


def create_mask_from_window(x: ArrayLike) -> NDArray[np.bool_]:
    """Boolean mask of the window's maximum: ``x == np.max(x)``, so *every* tied maximum is True.

    That is the course's definition (and its pool_backward therefore sends the full gradient to each
    tied position, unlike torch/TF, which pick one).
    """
    x = _as_f64(x)
    return x == np.max(x)


def distribute_value(dz: ArrayLike, shape: tuple[int, int]) -> Array:
    """Spread dz evenly over an (n_H, n_W) window: the gradient of average pooling."""
    n_H, n_W = shape
    return np.ones((n_H, n_W)) * (_as_f64(dz) / (n_H * n_W))


def pool_backward(
    dA: ArrayLike, cache: tuple[ArrayLike, Mapping[str, Any]], mode: PoolMode = "max"
) -> Array:
    """Gradient w.r.t. pool_forward's input, with the course's semantics.

    max: every position equal to its window's maximum gets ``mask * dA`` (all ties, see
    create_mask_from_window); average: each position gets dA / f**2. Contributions of overlapping
    windows add up.
    """
    A_prev, hparameters = _as_f64(cache[0]), cache[1]
    dA = _as_f64(dA)
    f, stride, n_H, n_W = _pool_geometry(A_prev, hparameters, mode)
    if dA.shape != (A_prev.shape[0], n_H, n_W, A_prev.shape[3]):
        raise ValueError(f"dA must have shape {(A_prev.shape[0], n_H, n_W, A_prev.shape[3])}, got {dA.shape}")

    dA_prev = np.zeros_like(A_prev)
    window_max = pool_forward(A_prev, hparameters, "max")[0] if mode == "max" else None
    share = dA / (f * f)  # distribute_value's dz / (n_H * n_W), for all windows at once
    for i in range(f):
        for j in range(f):
            taps = (slice(None), _taps(i, 0, n_H, stride), _taps(j, 0, n_W, stride), slice(None))
            if window_max is not None:
                # The course's mask * dA, a product (so a non-finite dA leaks as nan, as there).
                dA_prev[taps] += (A_prev[taps] == window_max) * dA
            else:
                dA_prev[taps] += share
    return dA_prev
