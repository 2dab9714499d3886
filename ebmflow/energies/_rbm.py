"""Binary restricted Boltzmann machine with the hidden units summed out."""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import positive_int
from .._numerics import log_2cosh, softplus
from .._tree import as_parameter, flat_indices
from ..space import Spins
from ._base import AbstractEnergy

_HIDDEN = {"spin": log_2cosh, "bernoulli": softplus}
# Second derivatives f'' of the hidden units' free energies: 1 - tanh² and σ(x) σ(-x).
_HIDDEN_CURVATURE = {
    "spin": lambda x: 1 - jnp.tanh(x) ** 2,
    "bernoulli": lambda x: jax.nn.sigmoid(x) * jax.nn.sigmoid(-x),
}


class RBM(AbstractEnergy):
    """RBM over visible spins, hidden units summed out exactly.

    ``-E(s) = a·s + Σ_a f(b_a + W_a·s)`` with ``f = ln 2cosh`` for ``hidden="spin"``
    (hidden units ±1) and ``f = softplus`` for ``hidden="bernoulli"`` (hidden units 0/1).
    Shapes: ``weights (n_hidden, n)``, ``visible_bias (n,)``, ``hidden_bias (n_hidden,)``.
    """

    space: Spins
    n_hidden: int = eqx.field(static=True)
    hidden: Literal["spin", "bernoulli"] = eqx.field(static=True)
    weights: Float[Array, "m n"]
    visible_bias: Float[Array, " n"]
    hidden_bias: Float[Array, " m"]

    def __init__(self, weights, visible_bias, hidden_bias, hidden: Literal["spin", "bernoulli"] = "spin"):
        self.weights = as_parameter(weights)
        self.visible_bias = as_parameter(visible_bias)
        self.hidden_bias = as_parameter(hidden_bias)
        if hidden not in _HIDDEN:
            raise ValueError(f"hidden must be 'spin' or 'bernoulli'; got {hidden!r}")
        self.hidden = hidden
        if self.weights.ndim != 2:
            raise ValueError(f"weights must have shape (n_hidden, n); got {self.weights.shape}")
        self.n_hidden, n = self.weights.shape
        self.space = Spins(n)
        if self.n_hidden < 1:
            raise ValueError(f"an RBM needs at least one hidden unit; got weights of shape {self.weights.shape}")
        if self.visible_bias.shape != (n,) or self.hidden_bias.shape != (self.n_hidden,):
            raise ValueError(
                f"with weights of shape {self.weights.shape}, visible_bias must have shape ({n},) and "
                f"hidden_bias ({self.n_hidden},); got {self.visible_bias.shape} and {self.hidden_bias.shape}"
            )

    @classmethod
    def init(
        cls, key, n: int, n_hidden: int, scale: float = 0.01, hidden: Literal["spin", "bernoulli"] = "spin",
        bias_scale: float = 0.0, dtype=None,
    ) -> "RBM":
        """Weights i.i.d. ``N(0, scale²)``, biases i.i.d. ``N(0, bias_scale²)`` (zero by default)."""
        n, n_hidden = Spins(n).n, positive_int("n_hidden", n_hidden)
        kw, ka, kb = jax.random.split(key, 3)
        dtype = dtype or jnp.result_type(float)
        return cls(
            scale * jax.random.normal(kw, (n_hidden, n), dtype),
            bias_scale * jax.random.normal(ka, (n,), dtype),
            bias_scale * jax.random.normal(kb, (n_hidden,), dtype),
            hidden,
        )

    @classmethod
    def from_bernoulli(cls, weights, visible_bias, hidden_bias) -> "RBM":
        """Exact spin form of a standard {0,1}/{0,1} RBM (THEORY §7).

        ``E(v, h) = -bᵀv - cᵀh - hᵀWv`` with ``W`` of shape ``(n_hidden, n)``. Under
        ``s = 2v - 1`` the returned spin-hidden RBM gives the same probabilities:
        ``w = W/4``, ``a_j = b_j/2 + Σ_a W_aj/4``, ``b_a = c_a/2 + Σ_j W_aj/4``.
        """
        w, b, c = jnp.asarray(weights), jnp.asarray(visible_bias), jnp.asarray(hidden_bias)
        return cls(w / 4, b / 2 + w.sum(0) / 4, c / 2 + w.sum(1) / 4, hidden="spin")

    @property
    def width(self) -> int:
        return self.n_hidden

    def energy(self, s):
        return -(self.visible_bias @ s + _HIDDEN[self.hidden](self.hidden_bias + self.weights @ s).sum())

    def curvature(self, weights, s):
        # Hidden unit a contributes f''(h_a) x xᵀ to its own block (W_a, b_a), x = (s, 1); a·s is linear.
        h = s @ self.weights.T + self.hidden_bias
        x = jnp.concatenate([s, jnp.ones_like(s[:, :1])], axis=1)
        blocks = jnp.einsum("la,li,lj->aij", weights[:, None] * _HIDDEN_CURVATURE[self.hidden](h), x, x)
        ids = flat_indices(self)
        unit = np.concatenate([ids.weights, ids.hidden_bias[:, None]], axis=1)  # (n_hidden, n + 1)
        size = ids.weights.size + ids.visible_bias.size + ids.hidden_bias.size
        return jnp.zeros((size, size), blocks.dtype).at[unit[:, :, None], unit[:, None, :]].set(blocks)

    def lo_features(self, s_lo):
        # W s = W_lo s_lo + W_hi s_hi: 2**n * n_hidden adds instead of 2**n * n * n_hidden (THEORY §8).
        # Hidden units first, (m, l), so that each chunk sums over them with vectorised adds.
        k = s_lo.shape[1]
        return self.weights[:, :k] @ s_lo.T, s_lo @ self.visible_bias[:k]

    def neg_energy_chunk(self, features, s_hi):
        x_lo, bias_lo = features
        k = self.n - s_hi.shape[0]
        x_hi = self.weights[:, k:] @ s_hi + self.hidden_bias
        return _HIDDEN[self.hidden](x_lo + x_hi[:, None]).sum(0) + bias_lo + self.visible_bias[k:] @ s_hi
