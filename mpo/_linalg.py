"""Array plumbing shared by the decomposition and canonical forms: dtypes and factorizations."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .errors import MPOError

NATIVE_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def working_dtype(dtype: np.dtype) -> np.dtype:
    """The LAPACK dtype a computation on ``dtype`` runs in.

    float32/float64/complex64/complex128 run as they are; float16 and other narrow floats
    (bfloat16 from ``ml_dtypes``) run in float32; integers and bools in float64.
    """
    dtype = np.dtype(dtype)
    if dtype.type in NATIVE_DTYPES:
        return dtype
    if dtype.kind == "c":
        return np.dtype(np.complex128)
    if dtype.kind == "f" and dtype.itemsize > 8:
        return np.dtype(np.float64)
    if dtype.kind in "fV":  # float16, bfloat16-like (ml_dtypes registers kind 'V')
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise MPOError(f"dtype must be a real or complex number type, got {dtype}")


def result_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype results are cast back to: the input's, except ints/bools give float64."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


def as_matrix(w: object, name: str = "W") -> np.ndarray:
    """Validate a dense 2-D finite array and return it in its working dtype."""
    try:
        arr = np.asarray(w)
    except Exception as exc:  # ragged lists and the like
        raise MPOError(f"{name} must be a 2-D array, could not convert {type(w).__name__}") from exc
    if arr.ndim != 2:
        raise MPOError(f"{name} must be a 2-D array (M, N), got shape {arr.shape}")
    if arr.size == 0:
        raise MPOError(f"{name} must be non-empty, got shape {arr.shape}")
    work = arr.astype(working_dtype(arr.dtype), copy=False)
    if not np.isfinite(work).all():
        bad = np.argwhere(~np.isfinite(work))[0]
        raise MPOError(
            f"{name} must be finite, got {work[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return work


# Aspect ratio above which a QR (or LQ) is taken first and only the small square factor is
# SVD'd (R-SVD, Chan 1982). LAPACK's gesdd on very tall or wide float32 matrices is pathological
# with some BLAS builds (OpenBLAS here: 9.9 s for 6144 x 384, against 0.1 s with QR first).
_QR_FIRST_RATIO = 2


def _svd_square(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        return scipy.linalg.svd(a, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    except np.linalg.LinAlgError:
        return scipy.linalg.svd(a, full_matrices=False, check_finite=False, lapack_driver="gesvd")


def svd(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``a = u @ diag(s) @ vh``, singular values descending.

    Tall (wide) matrices are first reduced by QR (LQ) so that LAPACK's SVD only sees a square
    factor; gesdd is used and gesvd is the fallback if it fails to converge.
    """
    m, n = a.shape
    if m >= _QR_FIRST_RATIO * n:
        q, r = qr(a)
        u, s, vh = _svd_square(r)
        return q @ u, s, vh
    if n >= _QR_FIRST_RATIO * m:
        q, r = qr(a.conj().T)  # a = r^H q^H
        u, s, vh = _svd_square(r.conj().T)
        return u, s, vh @ q.conj().T
    return _svd_square(a)


def qr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Economic QR ``a = q @ r``."""
    return scipy.linalg.qr(a, mode="economic", check_finite=False)
