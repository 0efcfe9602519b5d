# Run in the kernel before the student's notebook: restores the NumPy aliases that
# course-era (numpy 1.18/1.19) code uses and that later releases removed, so that correct
# code of that era is not failed for our environment. Aliases only; no behaviour changes.
import numpy as _np
import warnings as _warnings

for _name, _value in {
    "float": float, "int": int, "bool": bool, "object": object, "str": str,
    "complex": complex, "long": int, "unicode": str,   # removed in numpy 1.24
    "float_": _np.float64, "complex_": _np.complex128, "NaN": _np.nan, "Inf": _np.inf,
    "NINF": -_np.inf, "PINF": _np.inf, "infty": _np.inf, "Infinity": _np.inf,  # removed in numpy 2.0
    "product": _np.prod, "cumproduct": _np.cumprod, "alltrue": _np.all, "sometrue": _np.any,
    "round_": _np.round,
}.items():
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        if not hasattr(_np, _name):
            setattr(_np, _name, _value)
del _name, _value, _np, _warnings
