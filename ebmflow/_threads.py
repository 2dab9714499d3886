"""One BLAS thread while ebmflow's solver loops run.

Every step of a flow, a training run or a fixed-point search factorises small matrices (the
P × P LU of RODAS4, eigendecompositions; P in the hundreds) through LAPACK, which jaxlib calls
in scipy's OpenBLAS. OpenBLAS runs one thread per core, and its threads wait for each other:
next to two busy processes on a 2-core machine each of the thousands of small factorisations then
waits for the scheduler, and problem F1's flow took over 100 s instead of 1.2 s. With one BLAS
thread it took 1.7 s there, and 1.1 s on the quiet machine (`benchmarks/flow.py --busy`). The
limit holds during the call only (`threadpoolctl`); the caller's BLAS settings are restored after.
"""

import functools

import jax
from threadpoolctl import threadpool_limits


def one_blas_thread(fn):
    """Run ``fn`` with one BLAS thread, and wait for its results before the limit is lifted."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return jax.block_until_ready(fn(*args, **kwargs))

    return wrapper
