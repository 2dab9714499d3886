"""A Rosenbrock (linearly implicit) solver for diffrax, using the exact Jacobian.

Gradient flows are stiff late in training (THEORY §8): Hessian eigenvalues span
many decades. Explicit solvers are held at a step of about ``2/λ_max``; implicit
ESDIRK solvers pay for Newton iterations. A Rosenbrock method instead solves
linear systems with one matrix ``G = I/(hγ) - J`` per step, ``J = ∂f/∂y`` exact
(minus the loss Hessian for a gradient flow). RODAS4 is L-stable and stiffly
accurate, so its step grows with the time scale of the slowest active mode.
On the reference problem it needs several times fewer steps than order-2
methods at rtol 1e-6 (benchmarks/flow.py), and each step costs one Jacobian,
whatever the number of stages. `ebmflow.flow` hands it the exact Hessian
assembled from per-state gradients (`ebmflow.exact._hessian`), several times cheaper
than ``P`` forward derivatives of the gradient.
"""

from collections.abc import Callable
from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

# RODAS4 of E. Hairer and G. Wanner, "Solving ODEs II" (1996), Sect. IV.7, in the form
#   G K_i = f(y0 + Σ_j A_ij K_j) + Σ_j C_ij K_j / h,   y1 = y0 + Σ M_j K_j,   error = K_6.
_GAMMA = 0.25
_A = np.zeros((6, 6))
_C = np.zeros((6, 6))
_A[np.tril_indices(6, -1)] = [
    1.544, 0.9466785280815826, 0.2557011698983284, 3.314825187068521, 2.896124015972201,
    0.9986419139977817, 1.221224509226641, 6.019134481288629, 12.53708332932087,
    -0.687886036105895, 1.221224509226641, 6.019134481288629, 12.53708332932087,
    -0.687886036105895, 1.0,
]
_C[np.tril_indices(6, -1)] = [
    -5.6688, -2.430093356833875, -0.2063599157091915, -0.1073529058151375, -9.594562251023355,
    -20.47028614809616, 7.496443313967647, -10.24680431464352, -33.99990352819905,
    11.7089089320616, 8.083246795921522, -7.981132988064893, -31.52159432874371,
    16.31930543123136, -6.058818238834054,
]
_M = np.array([1.221224509226641, 6.019134481288629, 12.53708332932087, -0.687886036105895, 1.0, 1.0])


class Rodas4(dfx.AbstractAdaptiveSolver):
    """RODAS4: L-stable Rosenbrock method of order 4 (embedded order 3), 6 stages.

    For autonomous ODEs with a continuous vector field (no jumps: the first stage
    reuses the previous step's last evaluation), whose state ``y`` is a 1-D array. Per step: one Jacobian
    (`jacobian`, by default `jax.jacfwd` of the vector field), one LU factorisation, six linear solves
    and six vector-field evaluations (five stages and ``f(y1)``, which the next
    step reuses as its first stage and which gives cubic Hermite dense output).

    `jacobian`: optional ``(t, y, args) -> ∂f/∂y`` of shape ``(P, P)``; `ebmflow.flow` passes
    minus the exact Hessian, assembled directly instead of through ``P`` forward derivatives.
    """

    jacobian: Callable | None = None

    term_structure: ClassVar = dfx.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., dfx.ThirdOrderHermitePolynomialInterpolation]] = (
        dfx.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    #: vector-field evaluations and Jacobians per attempted step
    evaluations_per_step: ClassVar[int] = 6
    jacobians_per_step: ClassVar[int] = 1

    def order(self, terms):
        return 4

    def error_order(self, terms):
        return 4

    def init(self, terms, t0, t1, y0, args):
        return terms.vf(t0, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        f = lambda y: terms.vf(t0, y, args)  # noqa: E731  (autonomous: t is not used)
        h = t1 - t0
        f0 = solver_state  # FSAL; the gradient flow is autonomous and has no jumps
        jac = jax.jacfwd(f)(y0) if self.jacobian is None else self.jacobian(t0, y0, args)
        g = jnp.eye(y0.shape[0], dtype=y0.dtype) / (h * _GAMMA) - jac
        lu = jsl.lu_factor(g)
        a, c = jnp.asarray(_A, y0.dtype), jnp.asarray(_C, y0.dtype) / h

        def stage(i, ks):  # one traced copy of f for all stages keeps compilation small
            return ks.at[i].set(jsl.lu_solve(lu, f(y0 + a[i] @ ks) + c[i] @ ks))

        ks = jnp.zeros((6, *y0.shape), y0.dtype).at[0].set(jsl.lu_solve(lu, f0))
        ks = jax.lax.fori_loop(1, 6, stage, ks)
        y1 = y0 + jnp.asarray(_M, y0.dtype) @ ks
        f1 = f(y1)
        dense_info = dict(y0=y0, y1=y1, k=jnp.stack([h * f0, h * f1]))
        return y1, ks[5], dense_info, f1, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
