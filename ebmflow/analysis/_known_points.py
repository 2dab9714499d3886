"""Constructors for known stationary points of RBMs (THEORY §4)."""

import jax.numpy as jnp
import numpy as np

from .._checks import positive_int
from ..effective._couplings import moments
from ..energies._rbm import RBM
from ..exact._target import Target


def _pair_connected(target: Target) -> np.ndarray:
    """``C^D - C^indep``: connected pair correlations ``<s_i s_j> - <s_i><s_j>``, zero diagonal."""
    m, n = np.asarray(moments(target)), target.n
    single = m[1 << np.arange(n)]
    pairs = m[(1 << np.arange(n))[:, None] | (1 << np.arange(n))[None, :]]
    c = pairs - np.outer(single, single)
    np.fill_diagonal(c, 0.0)
    return c


def w0_saddle(target: Target, n_hidden: int, c: float = 0.0) -> RBM:
    """The ``W = 0`` stationary point of a spin-hidden RBM for any target.

    Weights zero, every hidden bias ``c``, visible fields ``atanh(m^D_i)``: the model
    matches the data's magnetisations and nothing else. It is a saddle whenever the
    target is correlated (see `w0_saddle_eigenvalue`).
    """
    m = moments(target)
    fields = jnp.arctanh(m[1 << np.arange(target.n)])
    dtype = target.probs.dtype
    return RBM(jnp.zeros((n_hidden, target.n), dtype), fields, jnp.full((n_hidden,), c, dtype), hidden="spin")


def w0_saddle_eigenvalue(target: Target, n_hidden: int, c: float = 0.0) -> float:
    """Predicted most negative Hessian eigenvalue at `w0_saddle`: ``-(1 - tanh² c) λ_max(C^D - C^indep)``.

    The eigenvector is ``y`` on one unit's weights and ``-y`` on another's (``y`` the top
    eigenvector of ``C^D - C^indep``), so the first-order terms the units share cancel. That
    needs ``n_hidden >= 2``; with one unit it holds only at ``c = 0``, since for
    ``tanh c != 0`` the weights couple to the visible fields (and the true value is less negative).
    """
    positive_int("n_hidden", n_hidden)
    if n_hidden == 1 and c != 0:
        raise ValueError(
            f"the W = 0 prediction holds for n_hidden >= 2, or c = 0; got n_hidden = 1 and c = {c}: compute the "
            "spectrum with ebmflow.hessian(w0_saddle(target, 1, c), target) instead"
        )
    return float(-(1 - np.tanh(c) ** 2) * np.linalg.eigvalsh(_pair_connected(target))[-1])


def duplicate_units(rbm: RBM, copies: int = 2) -> RBM:
    """Repeat every hidden unit ``copies`` times (``n_hidden → copies·n_hidden``).

    Identical units get identical gradients, so the flow keeps them identical:
    it stays in a subspace where ``G`` is rank-deficient and typically ends at a
    spurious point (THEORY §4).
    """
    copies = positive_int("copies", copies)
    return RBM(
        jnp.repeat(rbm.weights, copies, axis=0), rbm.visible_bias, jnp.repeat(rbm.hidden_bias, copies), rbm.hidden
    )
