"""Build the sample submissions of conv_step_by_step from ../template.ipynb.

Run from anywhere with the project's virtualenv:

    .venv/bin/python exercises/conv_step_by_step/samples/build_samples.py

Each sample is the template with the code regions (between "# YOUR CODE STARTS HERE" and
"# YOUR CODE ENDS HERE") filled in the way a student of the course would (numpy-1 era loop
code), plus the edits that real submissions show. All outputs are cleared. The expected grading
verdicts are in expected.toml next to this script; keep the two in step.

The output is deterministic: running the script again rewrites identical files.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from sample_builder import Template, changed, clear_outputs, insert_cell, notebook_text, write_samples  # noqa: E402

# nbgrader grade_ids of the solution cells (course notebook Convolution_model_Step_by_Step_v1)
SOLUTION_IDS = {
    "zero_pad": "cell-3096786c4bcad84a",
    "conv_single_step": "cell-bd1b8f799894d4e0",
    "conv_forward": "cell-00b35b01091c3cdc",
    "pool_forward": "cell-aed533a126205ca2",
    "conv_backward": "cell-651d7957ed306d8d",
    "create_mask_from_window": "cell-75cdfabbbe3c7905",
    "distribute_value": "cell-636557cd1667f01b",
    "pool_backward": "cell-46629e8e78d1ac80",
}
CONV_FORWARD_TEST_ID = "cell-429520eed87675d9"  # conv_forward's test cell (a sample adds a cell after it)
TEMPLATE = Template(HERE.parent / "template.ipynb", SOLUTION_IDS,
                    start="# YOUR CODE STARTS HERE", end="# YOUR CODE ENDS HERE")

# ------------------------------------------------------------------------------------------------
# Correct, course-style bodies (written at function-body indentation 0; indented when filled).
CORRECT = {
    "zero_pad": """
X_pad = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='constant', constant_values=(0, 0))
""",
    "conv_single_step": """
s = np.multiply(a_slice_prev, W)
Z = np.sum(s)
Z = Z + float(b)
""",
    "conv_forward": """
(m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
(f, f, n_C_prev, n_C) = W.shape
stride = hparameters["stride"]
pad = hparameters["pad"]

n_H = int((n_H_prev - f + 2 * pad) / stride) + 1
n_W = int((n_W_prev - f + 2 * pad) / stride) + 1

Z = np.zeros((m, n_H, n_W, n_C))

A_prev_pad = zero_pad(A_prev, pad)

for i in range(m):
    a_prev_pad = A_prev_pad[i]
    for h in range(n_H):
        vert_start = h * stride
        vert_end = vert_start + f

        for w in range(n_W):
            horiz_start = w * stride
            horiz_end = horiz_start + f

            for c in range(n_C):
                a_slice_prev = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]

                weights = W[:, :, :, c]
                biases = b[:, :, :, c]
                Z[i, h, w, c] = conv_single_step(a_slice_prev, weights, biases)
""",
    "pool_forward": """
for i in range(m):
    for h in range(n_H):
        vert_start = h * stride
        vert_end = vert_start + f

        for w in range(n_W):
            horiz_start = w * stride
            horiz_end = horiz_start + f

            for c in range (n_C):
                a_prev_slice = A_prev[i, vert_start:vert_end, horiz_start:horiz_end, c]

                if mode == "max":
                    A[i, h, w, c] = np.max(a_prev_slice)
                elif mode == "average":
                    A[i, h, w, c] = np.mean(a_prev_slice)
""",
    "conv_backward": """
(A_prev, W, b, hparameters) = cache
(m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
(f, f, n_C_prev, n_C) = W.shape

stride = hparameters["stride"]
pad = hparameters["pad"]

(m, n_H, n_W, n_C) = dZ.shape

dA_prev = np.zeros((m, n_H_prev, n_W_prev, n_C_prev))
dW = np.zeros((f, f, n_C_prev, n_C))
db = np.zeros((1, 1, 1, n_C))

A_prev_pad = zero_pad(A_prev, pad)
dA_prev_pad = zero_pad(dA_prev, pad)

for i in range(m):
    a_prev_pad = A_prev_pad[i]
    da_prev_pad = dA_prev_pad[i]

    for h in range(n_H):
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f

                a_slice = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]

                da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] += W[:,:,:,c] * dZ[i, h, w, c]
                dW[:,:,:,c] += a_slice * dZ[i, h, w, c]
                db[:,:,:,c] += dZ[i, h, w, c]

    dA_prev[i, :, :, :] = da_prev_pad[pad:-pad, pad:-pad, :]
""",
    "create_mask_from_window": """
mask = (x == np.max(x))
""",
    "distribute_value": """
(n_H, n_W) = shape
average = dz / (n_H * n_W)
a = np.ones(shape) * average
""",
    "pool_backward": """
(A_prev, hparameters) = cache
stride = hparameters["stride"]
f = hparameters["f"]

m, n_H_prev, n_W_prev, n_C_prev = A_prev.shape
m, n_H, n_W, n_C = dA.shape

dA_prev = np.zeros(A_prev.shape)

for i in range(m):
    a_prev = A_prev[i]

    for h in range(n_H):
        for w in range(n_W):
            for c in range(n_C):
                vert_start = h * stride
                vert_end = vert_start + f
                horiz_start = w * stride
                horiz_end = horiz_start + f

                if mode == "max":
                    a_prev_slice = a_prev[vert_start:vert_end, horiz_start:horiz_end, c]
                    mask = create_mask_from_window(a_prev_slice)
                    dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += mask * dA[i, h, w, c]

                elif mode == "average":
                    da = dA[i, h, w, c]
                    shape = (f, f)
                    dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += distribute_value(da, shape)
""",
}


# ------------------------------------------------------------------------------------------------
def all_correct():
    """The template with every code region filled correctly."""
    return TEMPLATE.fill_all(TEMPLATE.load(), CORRECT)


def fill_body_edit(name, old, new):
    """The correct body of name with one textual change (old must occur once)."""
    return changed(CORRECT[name], old, new)


# ------------------------------------------------------------------------------------------------
def sample_correct():
    return all_correct()


def sample_correct_messy():
    nb = all_correct()

    # A first, buggy try at zero_pad in an extra cell above the graded one (pads every axis).
    # The graded cell below redefines zero_pad correctly, and the last definition wins.
    insert_cell(nb, TEMPLATE.cell_index(nb, SOLUTION_IDS["zero_pad"]), """
        def zero_pad(X, pad):
            X_pad = np.pad(X, pad, mode='constant', constant_values=0)
            return X_pad

        x = np.random.randn(4, 3, 3, 2)
        print(zero_pad(x, 2).shape)
        """, "extra-zero-pad-first-try")

    # Debug prints left in graded functions.
    TEMPLATE.fill(nb, "zero_pad", CORRECT["zero_pad"] + 'print("X_pad shape:", X_pad.shape)\n')

    # np.float in conv_single_step (removed in numpy 1.24; the grader injects a shim).
    TEMPLATE.fill(nb, "conv_single_step", fill_body_edit("conv_single_step", "float(b)", "np.float(b)"))

    # conv_forward: "# GRADED FUNCTION" header deleted, np.int instead of int, a debug print.
    TEMPLATE.edit(nb, "conv_forward", "# GRADED FUNCTION: conv_forward\n\n", "")
    body = CORRECT["conv_forward"]
    body = body.replace("n_H = int(", "n_H = np.int(").replace("n_W = int(", "n_W = np.int(")
    body = body.replace("Z = np.zeros((m, n_H, n_W, n_C))\n",
                        "Z = np.zeros((m, n_H, n_W, n_C))\nprint(\"Z shape\", Z.shape)\n")
    TEMPLATE.fill(nb, "conv_forward", body)

    # pool_forward: the whole function, written elsewhere, pasted into the code region at
    # column 0. It ends the template's def, becomes the module-level pool_forward, and the
    # template's trailing lines become dead code after its return.
    pasted = '''
def pool_forward(A_prev, hparameters, mode = "max"):
    """
    Implements the forward pass of the pooling layer
    """
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    f = hparameters["f"]
    stride = hparameters["stride"]
    n_H = np.int(1 + (n_H_prev - f) / stride)
    n_W = np.int(1 + (n_W_prev - f) / stride)
    n_C = n_C_prev
    A = np.zeros((m, n_H, n_W, n_C))
    for i in range(m):
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vert_start = h * stride
                    vert_end = vert_start + f
                    horiz_start = w * stride
                    horiz_end = horiz_start + f
                    a_prev_slice = A_prev[i, vert_start:vert_end, horiz_start:horiz_end, c]
                    if mode == "max":
                        A[i, h, w, c] = np.max(a_prev_slice)
                    elif mode == "average":
                        A[i, h, w, c] = np.mean(a_prev_slice)
    cache = (A_prev, hparameters)
    return A, cache
'''
    TEMPLATE.fill(nb, "pool_forward", pasted, indent=0)

    # An extra cell with prints after the conv_forward tests.
    insert_cell(nb, TEMPLATE.cell_index(nb, CONV_FORWARD_TEST_ID) + 1, """
        print(Z.shape)
        print(cache_conv[0].shape)
        """, "extra-debug-prints")
    return nb


def sample_pool_ignores_example_index():
    nb = all_correct()
    TEMPLATE.fill(nb, "pool_forward", fill_body_edit(
        "pool_forward",
        "a_prev_slice = A_prev[i, vert_start",
        "a_prev_slice = A_prev[0, vert_start"))
    return nb


def sample_conv_cache_padded():
    nb = all_correct()
    # conv_forward pads A_prev in place, so the template's cache line stores the padded input.
    body = fill_body_edit("conv_forward", "A_prev_pad = zero_pad(A_prev, pad)",
                          "A_prev = zero_pad(A_prev, pad)")
    body = body.replace("a_prev_pad = A_prev_pad[i]", "a_prev_pad = A_prev[i]")
    TEMPLATE.fill(nb, "conv_forward", body)
    # conv_backward written to match: it takes the cached input as already padded.
    TEMPLATE.fill(nb, "conv_backward", """
        (A_prev_pad, W, b, hparameters) = cache
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev_pad.shape
        (f, f, n_C_prev, n_C) = W.shape

        stride = hparameters["stride"]
        pad = hparameters["pad"]

        (m, n_H, n_W, n_C) = dZ.shape

        # the cache already holds the padded A_prev
        n_H_prev = n_H_prev - 2 * pad
        n_W_prev = n_W_prev - 2 * pad

        dA_prev = np.zeros((m, n_H_prev, n_W_prev, n_C_prev))
        dW = np.zeros((f, f, n_C_prev, n_C))
        db = np.zeros((1, 1, 1, n_C))

        dA_prev_pad = zero_pad(dA_prev, pad)

        for i in range(m):
            a_prev_pad = A_prev_pad[i]
            da_prev_pad = dA_prev_pad[i]

            for h in range(n_H):
                for w in range(n_W):
                    for c in range(n_C):
                        vert_start = h * stride
                        vert_end = vert_start + f
                        horiz_start = w * stride
                        horiz_end = horiz_start + f

                        a_slice = a_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :]

                        da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] += W[:,:,:,c] * dZ[i, h, w, c]
                        dW[:,:,:,c] += a_slice * dZ[i, h, w, c]
                        db[:,:,:,c] += dZ[i, h, w, c]

            dA_prev[i, :, :, :] = da_prev_pad[pad:-pad, pad:-pad, :]
        """)
    return nb


def sample_hardcoded_public_answers():
    nb = all_correct()
    TEMPLATE.fill(nb, "conv_single_step", """
        # Z = np.sum(a_slice_prev * W) + float(b)
        Z = np.float64(-6.999089450680221)
        """)
    TEMPLATE.fill(nb, "conv_forward", """
        (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
        (f, f, n_C_prev, n_C) = W.shape
        stride = hparameters["stride"]
        pad = hparameters["pad"]

        Z = np.zeros((2, 3, 4, 8)) + 0.5511276474566768
        """)
    return nb


def sample_stride_off_by_one():
    nb = all_correct()
    body = CORRECT["conv_forward"]
    body = body.replace("n_H = int((n_H_prev - f + 2 * pad) / stride) + 1",
                        "n_H = (n_H_prev - f + 2 * pad) // stride")
    body = body.replace("n_W = int((n_W_prev - f + 2 * pad) / stride) + 1",
                        "n_W = (n_W_prev - f + 2 * pad) // stride")
    assert body != CORRECT["conv_forward"]
    TEMPLATE.fill(nb, "conv_forward", body)
    return nb


def sample_average_pool_divides_wrong():
    nb = all_correct()
    TEMPLATE.fill(nb, "pool_forward", fill_body_edit(
        "pool_forward",
        "A[i, h, w, c] = np.mean(a_prev_slice)",
        "A[i, h, w, c] = np.sum(a_prev_slice) / f"))
    TEMPLATE.fill(nb, "distribute_value", fill_body_edit(
        "distribute_value", "average = dz / (n_H * n_W)", "average = dz / n_H"))
    return nb


def sample_backward_missing_accumulate():
    nb = all_correct()
    TEMPLATE.fill(nb, "conv_backward", fill_body_edit(
        "conv_backward",
        "da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] += W",
        "da_prev_pad[vert_start:vert_end, horiz_start:horiz_end, :] = W"))
    TEMPLATE.fill(nb, "pool_backward", fill_body_edit(
        "pool_backward",
        "dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] += mask",
        "dA_prev[i, vert_start:vert_end, horiz_start:horiz_end, c] = mask"))
    return nb


def sample_syntax_error_in_one_cell():
    nb = all_correct()
    TEMPLATE.fill(nb, "create_mask_from_window", "mask = (x == np.max(x)\n")
    return nb


def sample_template_unfilled():
    return TEMPLATE.load()


NOTEBOOK_SAMPLES = {
    "correct": sample_correct,
    "correct_messy": sample_correct_messy,
    "pool_ignores_example_index": sample_pool_ignores_example_index,
    "conv_cache_padded": sample_conv_cache_padded,
    "hardcoded_public_answers": sample_hardcoded_public_answers,
    "stride_off_by_one": sample_stride_off_by_one,
    "average_pool_divides_wrong": sample_average_pool_divides_wrong,
    "backward_missing_accumulate": sample_backward_missing_accumulate,
    "syntax_error_in_one_cell": sample_syntax_error_in_one_cell,
    "template_unfilled": sample_template_unfilled,
}

NOT_A_NOTEBOOK = """\
Hi, the upload of my notebook kept failing so I am pasting my code here.

def zero_pad(X, pad):
    X_pad = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='constant', constant_values=(0, 0))
    return X_pad

def conv_single_step(a_slice_prev, W, b):
    s = np.multiply(a_slice_prev, W)
    Z = np.sum(s)
    Z = Z + float(b)
    return Z
"""


def main():
    write_samples(HERE, NOTEBOOK_SAMPLES)

    path = HERE / "not_a_notebook.ipynb"
    path.write_text(NOT_A_NOTEBOOK, encoding="utf-8")
    print("wrote", path)

    # A valid notebook whose JSON was cut in half (an interrupted upload).
    text = notebook_text(clear_outputs(sample_correct()))
    cut = text[: len(text) // 2]
    try:
        json.loads(cut)
    except ValueError:
        pass
    else:  # pragma: no cover - the cut always lands inside the JSON document
        raise AssertionError("truncated sample is still valid JSON")
    path = HERE / "truncated.ipynb"
    path.write_text(cut, encoding="utf-8")
    print("wrote", path)


if __name__ == "__main__":
    main()
