"""The course's own loop implementations of conv_step_by_step, as its notebook writes them.

Independent of reference/ (plain loops, course semantics): the tests use them as a second
oracle, and as the correct student whose knobs plant one realistic mistake at a time.
"""

import numpy as np

# Each mistake a test plants is one knob of these functions turned.


def course_zero_pad(X, pad, *, channel_pad=0, width=None):
    width = width if width is not None else (pad, pad)
    return np.pad(X, ((0, 0), (pad, pad), width, (channel_pad, channel_pad)), mode="constant", constant_values=0)


def course_conv_single_step(a_slice_prev, W, b, *, as_scalar=True, with_b=True):
    Z = np.sum(a_slice_prev * W)
    if not with_b:
        return Z
    return Z + float(b.reshape(())) if as_scalar else Z + b


def course_conv_forward(A_prev, W, b, hparameters, *, plus_one=1, stride_1=False, cache_padded=False,
                        with_cache=True):
    m, n_H_prev, n_W_prev, _ = A_prev.shape
    f, _, _, n_C = W.shape
    stride, pad = (1 if stride_1 else hparameters["stride"]), hparameters["pad"]
    n_H = int((n_H_prev - f + 2 * pad) / stride) + plus_one
    n_W = int((n_W_prev - f + 2 * pad) / stride) + 1
    Z = np.zeros((m, n_H, n_W, n_C))
    A_prev_pad = course_zero_pad(A_prev, pad)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    Z[i, h, w, c] = course_conv_single_step(A_prev_pad[i, vs:vs + f, hs:hs + f, :], W[..., c],
                                                            b[..., c])
    if not with_cache:
        return Z
    return Z, (A_prev_pad if cache_padded else A_prev, W, b, hparameters)


def course_pool_forward(A_prev, hparameters, mode="max", *, same_example=False, divisor=None,
                        ignore_mode=False, cache_hparameters=True):
    m, n_H_prev, n_W_prev, n_C = A_prev.shape
    f, stride = hparameters["f"], hparameters["stride"]
    n_H, n_W = int(1 + (n_H_prev - f) / stride), int(1 + (n_W_prev - f) / stride)
    A = np.zeros((m, n_H, n_W, n_C))
    for i in range(m):
        a_prev = A_prev[0 if same_example else i]
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    window = a_prev[h * stride:h * stride + f, w * stride:w * stride + f, c]
                    if mode == "max" or ignore_mode:
                        A[i, h, w, c] = np.max(window)
                    elif mode == "average":
                        A[i, h, w, c] = np.sum(window) / (divisor(f) if divisor else f * f)
    return A, ((A_prev, hparameters) if cache_hparameters else (A_prev,))


def course_conv_backward(dZ, cache, *, accumulate=True, with_db=True):
    A_prev, W, b, hparameters = cache
    f, _, _, n_C = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    m, n_H, n_W, _ = dZ.shape
    dA_prev, dW, db = np.zeros(A_prev.shape), np.zeros(W.shape), np.zeros(b.shape)
    A_prev_pad, dA_prev_pad = course_zero_pad(A_prev, pad), course_zero_pad(dA_prev, pad)
    for i in range(m):
        a_prev_pad, da_prev_pad = A_prev_pad[i], dA_prev_pad[i]
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vs, hs = h * stride, w * stride
                    window = (slice(vs, vs + f), slice(hs, hs + f), slice(None))
                    if accumulate:
                        da_prev_pad[window] += W[:, :, :, c] * dZ[i, h, w, c]
                    else:
                        da_prev_pad[window] = W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += a_prev_pad[window] * dZ[i, h, w, c]
                    if with_db:
                        db[:, :, :, c] += dZ[i, h, w, c]
        dA_prev[i, :, :, :] = da_prev_pad[pad:-pad, pad:-pad, :]
    return dA_prev, dW, db


def course_create_mask_from_window(x):
    return x == np.max(x)


def course_distribute_value(dz, shape):
    n_H, n_W = shape
    return np.ones(shape) * dz / (n_H * n_W)


def course_pool_backward(dA, cache, mode="max", *, accumulate=True, divide_average=True):
    A_prev, hparameters = cache
    stride, f = hparameters["stride"], hparameters["f"]
    m, n_H, n_W, n_C = dA.shape
    dA_prev = np.zeros(A_prev.shape)
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    window = (i, slice(h * stride, h * stride + f), slice(w * stride, w * stride + f), c)
                    if mode == "max":
                        gradient = course_create_mask_from_window(A_prev[window]) * dA[i, h, w, c]
                        if accumulate:
                            dA_prev[window] += gradient
                        else:
                            dA_prev[window] = gradient
                    elif mode == "average":
                        da = dA[i, h, w, c]
                        dA_prev[window] += (course_distribute_value(da, (f, f)) if divide_average
                                            else np.ones((f, f)) * da)
    return dA_prev


COURSE = {
    "zero_pad": course_zero_pad,
    "conv_single_step": course_conv_single_step,
    "conv_forward": course_conv_forward,
    "pool_forward": course_pool_forward,
    "conv_backward": course_conv_backward,
    "create_mask_from_window": course_create_mask_from_window,
    "distribute_value": course_distribute_value,
    "pool_backward": course_pool_backward,
}
