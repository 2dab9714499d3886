"""Restricted Boltzmann machines with the hidden units summed out: over spins (`RBM`) and over colours (`PottsRBM`)."""

import abc
from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import positive_int, prng_key
from .._numerics import log_2cosh, softplus
from .._tree import as_parameter, flat_indices
from ..space import Potts, Spins
from ._base import AbstractEnergy

Hidden = Literal["spin", "bernoulli"]
_HIDDEN = {"spin": log_2cosh, "bernoulli": softplus}
# Second derivatives f'' of the hidden units' free energies: 1 - tanh² and σ(x) σ(-x).
_HIDDEN_CURVATURE = {
    "spin": lambda x: 1 - jnp.tanh(x) ** 2,
    "bernoulli": lambda x: jax.nn.sigmoid(x) * jax.nn.sigmoid(-x),
}


def _check_hidden(hidden) -> str:
    if hidden not in _HIDDEN:
        raise ValueError(f"hidden must be 'spin' or 'bernoulli'; got {hidden!r}")
    return hidden


class AbstractRBM(AbstractEnergy):
    """``-E(v) = a·x(v) + Σ_a f(b_a + W_a·x(v))`` with ``x(v)`` the space's `encode`ing of the state.

    ``x`` is the spins themselves (`RBM`) or the one-hot colours (`PottsRBM`), so both share
    one implementation on the flat views `flat_weights` ``(n_hidden, n·w)`` and `flat_visible_bias`
    ``(n·w,)`` (``w`` numbers per site). ``f = ln 2cosh`` for ``hidden="spin"`` (hidden units ±1)
    and ``f = softplus`` for ``hidden="bernoulli"`` (hidden units 0/1).
    """

    n_hidden: eqx.AbstractVar[int]
    hidden: eqx.AbstractVar[str]
    hidden_bias: eqx.AbstractVar[Float[Array, " m"]]

    @property
    @abc.abstractmethod
    def flat_weights(self) -> Float[Array, "m n*w"]:
        """The weights against the encoded state, ``(n_hidden, n·w)``."""

    @property
    @abc.abstractmethod
    def flat_visible_bias(self) -> Float[Array, " n*w"]:
        """The visible bias against the encoded state, ``(n·w,)``."""

    @property
    def width(self) -> int:
        return self.n_hidden

    def _encode(self, s):
        return self.space.encode(s, self.hidden_bias.dtype)

    def energy(self, s):
        x = self._encode(s)
        return -(self.flat_visible_bias @ x + _HIDDEN[self.hidden](self.hidden_bias + self.flat_weights @ x).sum())

    def curvature(self, weights, s):
        # Hidden unit a contributes f''(h_a) x xᵀ to its own block (W_a, b_a), x = (x(v), 1); a·x is linear.
        x = self._encode(s)
        h = x @ self.flat_weights.T + self.hidden_bias
        x1 = jnp.concatenate([x, jnp.ones_like(x[:, :1])], axis=1)
        blocks = jnp.einsum("la,li,lj->aij", weights[:, None] * _HIDDEN_CURVATURE[self.hidden](h), x1, x1)
        ids = flat_indices(self)
        unit = np.concatenate([ids.weights.reshape(self.n_hidden, -1), ids.hidden_bias[:, None]], axis=1)
        size = ids.weights.size + ids.visible_bias.size + ids.hidden_bias.size
        return jnp.zeros((size, size), blocks.dtype).at[unit[:, :, None], unit[:, None, :]].set(blocks)

    def lo_features(self, s_lo):
        # W x = W_lo x_lo + W_hi x_hi: q**n * n_hidden adds instead of q**n * n * n_hidden (THEORY §8).
        # Hidden units first, (m, l), so that each chunk sums over them with vectorised adds.
        x_lo = self._encode(s_lo)
        k = x_lo.shape[1]
        return self.flat_weights[:, :k] @ x_lo.T, x_lo @ self.flat_visible_bias[:k]

    def neg_energy_chunk(self, features, s_hi):
        x_lo, bias_lo = features
        x_hi = self._encode(s_hi)
        k = self.flat_visible_bias.shape[0] - x_hi.shape[0]
        h_hi = self.flat_weights[:, k:] @ x_hi + self.hidden_bias
        return _HIDDEN[self.hidden](x_lo + h_hi[:, None]).sum(0) + bias_lo + self.flat_visible_bias[k:] @ x_hi


class RBM(AbstractRBM):
    """RBM over visible spins, hidden units summed out exactly.

    ``-E(s) = a·s + Σ_a f(b_a + W_a·s)`` with ``f = ln 2cosh`` for ``hidden="spin"``
    (hidden units ±1) and ``f = softplus`` for ``hidden="bernoulli"`` (hidden units 0/1).
    Shapes: ``weights (n_hidden, n)``, ``visible_bias (n,)``, ``hidden_bias (n_hidden,)``.
    """

    parameter_ranks: ClassVar[dict[str, int]] = {"weights": 2, "visible_bias": 1, "hidden_bias": 1}
    space: Spins
    n_hidden: int = eqx.field(static=True)
    hidden: Hidden = eqx.field(static=True)
    weights: Float[Array, "m n"]
    visible_bias: Float[Array, " n"]
    hidden_bias: Float[Array, " m"]

    def __init__(self, weights, visible_bias, hidden_bias, hidden: Hidden = "spin"):
        self.weights = as_parameter(weights)
        self.visible_bias = as_parameter(visible_bias)
        self.hidden_bias = as_parameter(hidden_bias)
        self.hidden = _check_hidden(hidden)
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
        cls, key, n: int, n_hidden: int, scale: float = 0.01, hidden: Hidden = "spin", bias_scale: float = 0.0,
        dtype=None,
    ) -> "RBM":
        """Weights i.i.d. ``N(0, scale²)``, biases i.i.d. ``N(0, bias_scale²)`` (zero by default)."""
        n, n_hidden = Spins(n).n, positive_int("n_hidden", n_hidden)
        kw, ka, kb = jax.random.split(prng_key(key), 3)
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
    def flat_weights(self):
        return self.weights

    @property
    def flat_visible_bias(self):
        return self.visible_bias


class PottsRBM(AbstractRBM):
    """RBM over ``q``-colour visible units (THEORY §9), hidden units summed out exactly.

    ``-E(v) = Σ_i b_i(v_i) + Σ_a f(c_a + Σ_i W_ai(v_i))``, ``f`` as in `RBM` (``"bernoulli"``,
    hidden units 0/1, softplus, by default). Shapes: ``weights (n_hidden, n, q)``,
    ``visible_bias (n, q)``, ``hidden_bias (n_hidden,)``. The energy is invariant under the
    zero-sum gauge moves of `zero_sum_gauge` (up to a constant absorbed by ``Z``).
    """

    parameter_ranks: ClassVar[dict[str, int]] = {"weights": 3, "visible_bias": 2, "hidden_bias": 1}
    space: Potts
    n_hidden: int = eqx.field(static=True)
    hidden: Hidden = eqx.field(static=True)
    weights: Float[Array, "m n q"]
    visible_bias: Float[Array, "n q"]
    hidden_bias: Float[Array, " m"]

    def __init__(self, weights, visible_bias, hidden_bias, hidden: Hidden = "bernoulli"):
        self.weights = as_parameter(weights)
        self.visible_bias = as_parameter(visible_bias)
        self.hidden_bias = as_parameter(hidden_bias)
        self.hidden = _check_hidden(hidden)
        if self.weights.ndim != 3:
            raise ValueError(f"PottsRBM weights must have shape (n_hidden, n, q); got {self.weights.shape}")
        self.n_hidden, n, q = self.weights.shape
        if self.n_hidden < 1:
            raise ValueError(f"a PottsRBM needs at least one hidden unit; got weights of shape {self.weights.shape}")
        self.space = Potts(n, q)
        if self.visible_bias.shape != (n, q) or self.hidden_bias.shape != (self.n_hidden,):
            raise ValueError(
                f"with weights of shape {self.weights.shape}, visible_bias must have shape ({n}, {q}) and "
                f"hidden_bias ({self.n_hidden},); got {self.visible_bias.shape} and {self.hidden_bias.shape}"
            )

    @classmethod
    def init(
        cls, key, n: int, q: int, n_hidden: int, scale: float = 0.01, hidden: Hidden = "bernoulli",
        bias_scale: float = 0.0, dtype=None,
    ) -> "PottsRBM":
        """Weights i.i.d. ``N(0, scale²)``, biases i.i.d. ``N(0, bias_scale²)`` (zero by default)."""
        space, n_hidden = Potts(n, q), positive_int("n_hidden", n_hidden)
        kw, ka, kb = jax.random.split(prng_key(key), 3)
        dtype = dtype or jnp.result_type(float)
        return cls(
            scale * jax.random.normal(kw, (n_hidden, space.n, space.q), dtype),
            bias_scale * jax.random.normal(ka, (space.n, space.q), dtype),
            bias_scale * jax.random.normal(kb, (n_hidden,), dtype),
            hidden,
        )

    @classmethod
    def from_rbms(cls, weight_matrix, vbias, hbias) -> "PottsRBM":
        """From the layout of the `rbms` package's ``PBRBM`` (Bernoulli hidden units).

        ``weight_matrix (n_visible, q, n_hidden)``, ``vbias (n_visible, q)``, ``hbias (n_hidden,)``,
        with ``E(v, h) = -Σ_i vbias[i, v_i] - hbias·h - Σ_{i,a} W[i, v_i, a] h_a``, ``h ∈ {0, 1}``.
        """
        w = np.asarray(weight_matrix)
        if w.ndim != 3:
            raise ValueError(f"rbms PBRBM weight_matrix must have shape (n_visible, q, n_hidden); got {w.shape}")
        return cls(np.transpose(w, (2, 0, 1)), vbias, hbias, hidden="bernoulli")

    @classmethod
    def from_couplings_inference(cls, weight_matrix, vbias, hbias) -> "PottsRBM":
        """From the layout of the papers' coupling-inference code (colour axis first; Bernoulli hidden units).

        ``weight_matrix (q, n_visible, n_hidden)``, ``vbias (q, n_visible)``, ``hbias (n_hidden,)``,
        with ``H(v, h) = -Σ W[v_i, i, a] h_a - Σ vbias[v_i, i] - Σ hbias_a h_a``, ``h ∈ {0, 1}``.
        """
        w, b = np.asarray(weight_matrix), np.asarray(vbias)
        if w.ndim != 3 or b.ndim != 2:
            raise ValueError(f"weight_matrix must have shape (q, n_visible, n_hidden) and vbias (q, n_visible); got "
                             f"{w.shape} and {b.shape}")
        return cls(np.transpose(w, (2, 1, 0)), b.T, hbias, hidden="bernoulli")

    def zero_sum_gauge(self) -> "PottsRBM":
        """The same distribution in the zero-sum gauge (THEORY §9).

        ``W_ai(μ) → W_ai(μ) - w̄_ai``, ``c_a → c_a + Σ_i w̄_ai``, ``b_i(μ) → b_i(μ) - mean_ν b_i(ν)``
        with ``w̄_ai = mean_μ W_ai(μ)``: every hidden unit's input is unchanged, and the visible
        shift is a constant that ``Z`` absorbs.
        """
        mean = self.weights.mean(-1)
        return PottsRBM(self.weights - mean[..., None], self.visible_bias - self.visible_bias.mean(-1, keepdims=True),
                        self.hidden_bias + mean.sum(-1), self.hidden)

    @property
    def flat_weights(self):
        return self.weights.reshape(self.n_hidden, -1)

    @property
    def flat_visible_bias(self):
        return self.visible_bias.reshape(-1)


