"""Hessians of the training objective on flat parameters: dense, or their extreme eigenvalues matrix-free."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse.linalg as spla

from .._checks import finite_number
from .._objective import Objective
from ..exact._divergence import check_pair
from ..exact._sums import check_sum


@eqx.filter_jit
def dense_hessian(model, probs, penalty):
    """``∇²L`` at ``model`` (no checks; `hessian` is the public form)."""
    objective = Objective(model)
    return objective.hessian(objective.theta0, probs, penalty)


def hessian(model, target, penalty: float = 0.0) -> jax.Array:
    """Dense ``∇²_θ L`` of ``L = KL + (penalty/2)||θ||²`` over the flattened parameters, ``(P, P)``.

    Exact: ``Cov_θ(∇_θ(-E)) + Σ_v (p_θ(v) - p_D(v)) ∇²_θ(-E(v)) + penalty·I`` in one pass over the states
    (in chunks of the model's space, as in `ebmflow.kl`).
    """
    finite_number("penalty", penalty)
    target = check_pair(model, target)
    check_sum(model, 1, "the Hessian")
    return dense_hessian(model, target.probs, jnp.asarray(penalty, target.probs.dtype))


@eqx.filter_jit
def _hvp(model, probs, penalty, v):
    objective = Objective(model)
    grad = jax.grad(objective)  # plain autodiff: `objective.gradient`'s derivative would build the dense Hessian
    return jax.jvp(lambda t: grad(t, probs, penalty), (objective.theta0,), (v,))[1]


def lanczos_extremes(model, target, penalty, k: int = 6, tol: float = 1e-10):
    """``(smallest, largest)`` ``k`` eigenvalues of ``∇²L`` by Lanczos (no checks; see `extreme_eigenvalues`)."""
    size = Objective(model).theta0.shape[0]
    dtype = target.probs.dtype
    pen = jnp.asarray(penalty, dtype)

    def matvec(v):
        return np.asarray(_hvp(model, target.probs, pen, jnp.asarray(v.ravel(), dtype)))

    operator = spla.LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    k = min(k, size - 1)
    largest = spla.eigsh(operator, k=k, which="LA", tol=tol, return_eigenvectors=False)
    smallest = spla.eigsh(operator, k=k, which="SA", tol=tol, return_eigenvectors=False)
    return np.sort(smallest), np.sort(largest)


def extreme_eigenvalues(model, target, penalty: float = 0.0, k: int = 6, tol: float = 1e-10):
    """The ``k`` largest and ``k`` smallest eigenvalues of ``∇²L``, matrix-free.

    Lanczos iterations (scipy's ARPACK ``eigsh``) on Hessian-vector products
    (forward-over-reverse), so memory stays O(P). Returns ``(smallest, largest)``, ascending.
    """
    finite_number("penalty", penalty)
    target = check_pair(model, target)
    check_sum(model, 1, "the Hessian")
    return lanczos_extremes(model, target, penalty, k, tol)
