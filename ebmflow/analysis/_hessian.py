"""Hessians of the training objective on flat parameters: dense, or matrix-free products."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

from .._exact import check_pair
from ..flow._objective import Objective


@eqx.filter_jit
def _dense(model, probs, penalty):
    objective = Objective(model)
    return objective.hessian(objective.theta0, probs, penalty)


def hessian(model, target, penalty: float = 0.0) -> jax.Array:
    """Dense ``∇²_θ L`` of ``L = KL + (penalty/2)||θ||²`` over the flattened parameters, ``(P, P)``.

    Exact: ``Cov_θ(∇_θ(-E)) + Σ_s (p_θ(s) - p_D(s)) ∇²_θ(-E(s)) + penalty·I`` in one pass over the states.
    """
    target = check_pair(model, target)
    return _dense(model, target.probs, jnp.asarray(penalty, target.probs.dtype))


@eqx.filter_jit
def _hvp(model, probs, penalty, v):
    objective = Objective(model)
    grad = jax.grad(objective)  # plain autodiff: `objective.gradient`'s derivative would build the dense Hessian
    return jax.jvp(lambda t: grad(t, probs, penalty), (objective.theta0,), (v,))[1]


def extreme_eigenvalues(model, target, penalty: float = 0.0, k: int = 6, tol: float = 1e-10):
    """The ``k`` largest and ``k`` smallest eigenvalues of ``∇²L``, matrix-free.

    Lanczos iterations (scipy's ARPACK ``eigsh``) on Hessian-vector products
    (forward-over-reverse), so memory stays O(P). Returns ``(smallest, largest)``, ascending.
    """
    target = check_pair(model, target)
    size = Objective(model).theta0.shape[0]
    dtype = target.probs.dtype
    pen = jnp.asarray(penalty, dtype)
    operator = spla.LinearOperator(
        (size, size), matvec=lambda v: np.asarray(_hvp(model, target.probs, pen, jnp.asarray(v.ravel(), dtype))),
        dtype=np.float64,
    )
    k = min(k, size - 1)
    largest = spla.eigsh(operator, k=k, which="LA", tol=tol, return_eigenvectors=False)
    smallest = spla.eigsh(operator, k=k, which="SA", tol=tol, return_eigenvectors=False)
    return np.sort(smallest), np.sort(largest)
