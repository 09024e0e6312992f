"""One lead at a time through LightGBM's fast single-row C API.

`Booster.predict` sets up a predictor on every call: it parses its parameters into a string,
copies them, and builds a prediction context, which for one row costs about twice the
prediction itself. LightGBM's C API keeps that set-up in a `FastConfig`
(`LGBM_BoosterPredictForMatSingleRowFastInit`), made once and reused, so one row costs what
its trees cost. The call keeps the GIL (`ctypes.PyDLL`), so no two threads are ever inside one
`FastConfig`'s buffers at once; it takes a shared lock on the booster, so it is freed before the
booster is (this object holds the booster).

The results are LightGBM's own, bit for bit (the tests compare them with `Booster.predict`).
"""

from __future__ import annotations

import ctypes
import weakref

import lightgbm as lgb
import numpy as np
from lightgbm.basic import (
    _C_API_DTYPE_FLOAT64,
    _C_API_PREDICT_CONTRIB,
    _C_API_PREDICT_RAW_SCORE,
    _LIB,
    _safe_call,
)

_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
#: The same library, called without releasing the GIL: for a call of microseconds, letting
#: another thread run costs more than it gives (the caller waits to get the GIL back).
_LIB_HOLDING_GIL = ctypes.PyDLL(_LIB._name)


class SingleRowPredictor:
    """Raw margins or per-column contributions of one float64 row, as `Booster.predict` gives
    them with `raw_score=True` or `pred_contrib=True` and one thread."""

    def __init__(self, booster: lgb.Booster, contributions: bool) -> None:
        self._booster = booster
        self._ncol = booster.num_feature()
        self._width = self._ncol + 1 if contributions else 1
        self._handle = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_C_API_PREDICT_CONTRIB if contributions else _C_API_PREDICT_RAW_SCORE),
                ctypes.c_int(0),  # from the first iteration...
                ctypes.c_int(-1),  # ...to the last, as Booster.predict does by default
                ctypes.c_int(_C_API_DTYPE_FLOAT64),
                ctypes.c_int32(self._ncol),
                b"num_threads=1",
                ctypes.byref(self._handle),
            )
        )
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, self._handle)

    def __call__(self, row: np.ndarray) -> np.ndarray:
        """The prediction of `row` (1-D, one value per model column), a new array."""
        data = np.ascontiguousarray(row, dtype=np.float64)
        out = np.empty(self._width, dtype=np.float64)
        length = ctypes.c_int64()
        _safe_call(
            _LIB_HOLDING_GIL.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle,
                data.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(length),
                out.ctypes.data_as(_DOUBLE_P),
            )
        )
        return out
