"""Reference NumPy conv/pool, forward + backward, vs torch CPU and vs course-style loops.

    .venv/bin/python bench/reference_speed.py

Same shapes, float64 everywhere (the reference always computes in float64; torch float32 is
shown too, for scale). Loops are the course's loop implementation, timed on the smallest size
only (they take minutes on the big ones) and reported per size by extrapolation from the
number of multiply-adds; that row says so.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from common import write_section
from reference import conv_step_by_step as ref

SIZES = [(2, 16, 16, 8, 16), (8, 32, 32, 16, 32), (32, 64, 64, 32, 64)]  # m, H, W, C_in, C_out (3x3 filters)
REPEATS = 3


def best(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_round(A, W, b, dZ, hp, pool_hp):
    Z, cache = ref.conv_forward(A, W, b, hp)
    ref.conv_backward(dZ, cache)
    P, pcache = ref.pool_forward(A, pool_hp, "max")
    ref.pool_backward(np.ones_like(P), pcache, "max")
    P, pcache = ref.pool_forward(A, pool_hp, "average")
    ref.pool_backward(np.ones_like(P), pcache, "average")


def torch_round(A, W, b, dZ, dtype):
    a = torch.tensor(A.transpose(0, 3, 1, 2), dtype=dtype, requires_grad=True)
    w = torch.tensor(W.transpose(3, 2, 0, 1), dtype=dtype, requires_grad=True)
    bias = torch.tensor(b.reshape(-1), dtype=dtype, requires_grad=True)
    dz = torch.tensor(dZ.transpose(0, 3, 1, 2), dtype=dtype)
    z = F.conv2d(a, w, bias, stride=1, padding=1)
    z.backward(dz)
    for pool in (F.max_pool2d, F.avg_pool2d):
        x = a.detach().requires_grad_(True)
        out = pool(x, kernel_size=2, stride=2)
        out.backward(torch.ones_like(out))


def loop_conv_forward_backward(A, W, b, dZ, hp):
    """The course's loop implementation (conv part), for the loops row."""
    m, H, Wd, C = A.shape
    f, _, _, K = W.shape
    pad, s = hp["pad"], hp["stride"]
    Ap = np.pad(A, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    nH, nW = (H - f + 2 * pad) // s + 1, (Wd - f + 2 * pad) // s + 1
    Z = np.zeros((m, nH, nW, K))
    dAp, dW, db = np.zeros_like(Ap), np.zeros_like(W), np.zeros_like(b)
    for i in range(m):
        for h in range(nH):
            for w in range(nW):
                for c in range(K):
                    window = Ap[i, h * s:h * s + f, w * s:w * s + f, :]
                    Z[i, h, w, c] = np.sum(window * W[..., c]) + float(b[..., c])
                    dAp[i, h * s:h * s + f, w * s:w * s + f, :] += W[..., c] * dZ[i, h, w, c]
                    dW[..., c] += window * dZ[i, h, w, c]
                    db[..., c] += dZ[i, h, w, c]
    return Z, dAp, dW, db


def main() -> None:
    torch.set_num_threads(torch.get_num_threads())
    rng = np.random.default_rng(0)
    rows, loop_per_mac = [], None
    for m, H, Wd, C, K in SIZES:
        A, W = rng.standard_normal((m, H, Wd, C)), rng.standard_normal((3, 3, C, K))
        b, dZ = rng.standard_normal((1, 1, 1, K)), rng.standard_normal((m, H, Wd, K))
        hp, pool_hp = {"pad": 1, "stride": 1}, {"f": 2, "stride": 2}
        t_ref = best(lambda: reference_round(A, W, b, dZ, hp, pool_hp))
        t_t64 = best(lambda: torch_round(A, W, b, dZ, torch.float64))
        t_t32 = best(lambda: torch_round(A, W, b, dZ, torch.float32))
        macs = m * H * Wd * K * 9 * C
        if loop_per_mac is None:  # time the loops once, on the smallest size
            loop_per_mac = best(lambda: loop_conv_forward_backward(A, W, b, dZ, hp), 1) / macs
        t_loop = loop_per_mac * macs
        rows.append(f"| ({m}, {H}, {Wd}, {C}) * 3x3x{C}x{K} | {t_ref * 1e3:.1f} ms | {t_t64 * 1e3:.1f} ms | "
                    f"{t_ref / t_t64:.2f}x | {t_t32 * 1e3:.1f} ms | {t_ref / t_t32:.2f}x | "
                    f"{t_loop:.1f} s | {t_loop / t_ref:,.0f}x |")
    body = ("| input * filters | reference | torch f64 | ref/torch f64 | torch f32 | ref/torch f32 | "
            "course loops (conv only, extrapolated) | loops/ref |\n|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + f"""

One round = conv forward + backward (pad 1, stride 1) and max and average pool forward +
backward (f 2, stride 2); best of {REPEATS}. torch uses {torch.get_num_threads()} threads, NumPy
its BLAS threads. The loops row times the course's loop conv (forward + backward) on the first
size and scales by multiply-adds; the pooling loops would add to it. Goal: within 2x of torch,
over 100x faster than loops.
""")
    print(body)
    write_section("Reference speed vs torch and loops (issue 7)", body, ".venv/bin/python bench/reference_speed.py")


if __name__ == "__main__":
    main()
