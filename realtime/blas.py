"""One BLAS thread for the small matrix work of a frame (the fit, the CPU deformation).

Their matrices are small: a second BLAS thread only adds hand-off cost, and on a
busy 2-core machine it spins for milliseconds (measured: the demo avatar's NumPy
deformation 27.6 ms p50 with OpenBLAS's default threads, 8.7 ms with one).
Covers NumPy's BLAS and SciPy's, which numba's linear algebra calls.
"""

from __future__ import annotations

_limiter = None


class OneBlasThread:
    """Context manager: BLAS limited to one thread inside, as before outside."""

    def __enter__(self) -> "OneBlasThread":
        global _limiter
        if _limiter is None:
            import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so that the controller sees it)
            from threadpoolctl import ThreadpoolController

            _limiter = ThreadpoolController().select(user_api="blas")
        self._ctx = _limiter.limit(limits=1)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)
