"""Hessians of the training objective on flat parameters: dense, or matrix-free products."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

from .._exact import check_pair
from ..flow._objective import Objective


@eqx.filter_jit
def _dense(model, probs, penalty, chunk_size):
    objective = Objective(model, chunk_size)
    return objective.hessian(objective.theta0, probs, penalty)


def hessian(model, target, penalty: float = 0.0, *, chunk_size: int | None = None) -> jax.Array:
    """Dense ``∇²_θ L`` of ``L = KL + (penalty/2)||θ||²`` over the flattened parameters, ``(P, P)``.

    Exact: ``Cov_θ(∇_θ(-E)) + Σ_s (p_θ(s) - p_D(s)) ∇²_θ(-E(s)) + penalty·I`` in one pass over the states
    (``chunk_size`` states at a time, as in `ebmflow.kl`).
    """
    target = check_pair(model, target)
    return _dense(model, target.probs, jnp.asarray(penalty, target.probs.dtype), chunk_size)


@eqx.filter_jit
def _hvp(model, probs, penalty, v, chunk_size):
    objective = Objective(model, chunk_size)
    grad = jax.grad(objective)  # plain autodiff: `objective.gradient`'s derivative would build the dense Hessian
    return jax.jvp(lambda t: grad(t, probs, penalty), (objective.theta0,), (v,))[1]


def extreme_eigenvalues(
    model, target, penalty: float = 0.0, k: int = 6, tol: float = 1e-10, *, chunk_size: int | None = None
):
    """The ``k`` largest and ``k`` smallest eigenvalues of ``∇²L``, matrix-free.

    Lanczos iterations (scipy's ARPACK ``eigsh``) on Hessian-vector products
    (forward-over-reverse), so memory stays O(P). Returns ``(smallest, largest)``, ascending.
    """
    target = check_pair(model, target)
    size = Objective(model, chunk_size).theta0.shape[0]
    dtype = target.probs.dtype
    pen = jnp.asarray(penalty, dtype)

    def matvec(v):
        return np.asarray(_hvp(model, target.probs, pen, jnp.asarray(v.ravel(), dtype), chunk_size))

    operator = spla.LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    k = min(k, size - 1)
    largest = spla.eigsh(operator, k=k, which="LA", tol=tol, return_eigenvectors=False)
    smallest = spla.eigsh(operator, k=k, which="SA", tol=tol, return_eigenvectors=False)
    return np.sort(smallest), np.sort(largest)
