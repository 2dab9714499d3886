"""Independent reference mathematics for the fixed-point and stability tests (THEORY §3-5).

Plain NumPy, vectorised over the 2**n states only where the loop versions in
`reference.py` would be too slow for finite differences over every parameter.
Nothing here calls ebmflow's numerics: a model is read for its parameters, which
are packed into a flat vector θ in the order written below, and every quantity is
re-derived from the class's formula:

- gradient ``∇L = <D>_θ - <D>_D + penalty·θ`` with ``D(s) = ∂(-E(s))/∂θ`` (derivatives by hand);
- Hessian ``∇²L = Cov_θ(D) + Σ_s (p_θ(s) - p_D(s)) ∂²(-E(s))/∂θ² + penalty·I`` (closed form), or
  central differences of the gradient;
- couplings ``J = 2^-n H (-E)`` with the explicit Sylvester matrix of `reference.hadamard`.

Conventions (THEORY §1): state ``b`` has ``s_i = 1 - 2 bit_i(b)``; subset ``S`` is a bitmask.
"""

import math

import numpy as np
import reference as ref
from scipy.special import expit, logsumexp


def states(n: int) -> np.ndarray:
    """All states, ``(2**n, n)``, index order (vectorised `reference.states`)."""
    b = np.arange(2**n)[:, None]
    return 1.0 - 2.0 * ((b >> np.arange(n)) & 1)


def parities(s: np.ndarray, subsets) -> np.ndarray:
    """``χ_S(s)`` for each state row and each subset bitmask: ``(states, len(subsets))``."""
    masks = (np.asarray(subsets, dtype=np.int64)[:, None] >> np.arange(s.shape[1])) & 1
    return np.prod(np.where(masks[None] == 1, s[:, None, :], 1.0), axis=-1)


def _np(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- per-class formulas
#
# Each class below knows one energy: ``theta`` (packed parameters), ``neg_energies(θ)``
# ``(2**n,)``, ``features(θ)`` ``D (2**n, P)`` and ``second(θ)`` ``∂²(-E)/∂θ² (2**n, P, P)``.


class RBMRef:
    """``-E = a·s + Σ_a f(b_a + W_a·s)``, f = ln 2cosh (spin) or softplus (bernoulli).

    θ = ``[W.ravel() (m×n, row-major), a (n), b (m)]``.
    """

    def __init__(self, weights, visible_bias, hidden_bias, hidden="spin"):
        self.m, self.n = np.shape(weights)
        self.hidden = hidden
        self.theta = np.concatenate([_np(weights).ravel(), _np(visible_bias), _np(hidden_bias)])
        self.s = states(self.n)

    @classmethod
    def of(cls, model):
        return cls(model.weights, model.visible_bias, model.hidden_bias, model.hidden)

    def unpack(self, theta):
        m, n = self.m, self.n
        return theta[: m * n].reshape(m, n), theta[m * n : m * n + n], theta[m * n + n :]

    def _f(self, x, order):
        if self.hidden == "spin":  # ln 2cosh, tanh, 1 - tanh²
            return [ref.ln2cosh(x), np.tanh(x), 1 - np.tanh(x) ** 2][order]
        sig = expit(x)  # softplus, sigmoid, σ(1 - σ)
        return [np.logaddexp(0, x), sig, sig * (1 - sig)][order]

    def neg_energies(self, theta):
        w, a, b = self.unpack(theta)
        return self.s @ a + self._f(self.s @ w.T + b, 0).sum(1)

    def features(self, theta):
        w, _, b = self.unpack(theta)
        fp = self._f(self.s @ w.T + b, 1)  # (states, m)
        d_w = fp[:, :, None] * self.s[:, None, :]
        return np.concatenate([d_w.reshape(len(self.s), -1), self.s, fp], axis=1)

    def second(self, theta):
        w, _, b = self.unpack(theta)
        m, n, size = self.m, self.n, theta.size
        fpp = self._f(self.s @ w.T + b, 2)
        out = np.zeros((len(self.s), size, size))
        for unit in range(m):
            # -E depends on (W_unit, b_unit) only through x = b + W·s: f''(x) [s; 1][s; 1]ᵀ.
            idx = np.r_[unit * n : (unit + 1) * n, m * n + n + unit]
            x = np.concatenate([self.s, np.ones((len(self.s), 1))], axis=1)
            out[:, idx[:, None], idx[None, :]] = fpp[:, unit, None, None] * x[:, :, None] * x[:, None, :]
        return out


class LinearRef:
    """``-E = Σ_k θ_k φ_k(s)`` with fixed features φ: Ising (fields, then pairs in ``triu_indices`` order),
    HigherOrderIsing (its subsets), WalshModel (all subsets ``1..2**n-1``)."""

    def __init__(self, n, subsets, theta):
        self.n = n
        self.phi = parities(states(n), subsets)
        self.theta = _np(theta)

    @classmethod
    def of(cls, model):
        n = model.n
        name = type(model).__name__
        if name == "Ising":
            pairs = [(1 << i) | (1 << j) for i, j in zip(*np.triu_indices(n, 1))]
            return cls(n, [1 << i for i in range(n)] + pairs, np.concatenate([_np(model.fields), _np(model.couplings)]))
        if name == "HigherOrderIsing":
            return cls(n, model.subsets, model.couplings)
        if name == "WalshModel":
            return cls(n, range(1, 2**n), model.couplings)
        raise NotImplementedError(name)

    def neg_energies(self, theta):
        return self.phi @ theta

    def features(self, theta):
        return self.phi

    def second(self, theta):
        return np.zeros((self.phi.shape[0], theta.size, theta.size))


class MLPRef:
    """One hidden layer: ``E = w2·tanh(W1 s + b1) + b2``; θ = ``[W1.ravel(), b1, w2, b2]``."""

    def __init__(self, w1, b1, w2, b2):
        self.k, self.n = np.shape(w1)
        self.theta = np.concatenate([_np(w1).ravel(), _np(b1), _np(w2).ravel(), _np(b2)])
        self.s = states(self.n)

    @classmethod
    def of(cls, model):
        first, last = model.layers
        assert model.activation == "tanh"
        return cls(first.weight, first.bias, last.weight, last.bias)

    def unpack(self, theta):
        k, n = self.k, self.n
        return theta[: k * n].reshape(k, n), theta[k * n : k * n + k], theta[k * n + k : k * n + 2 * k], theta[-1]

    def neg_energies(self, theta):
        w1, b1, w2, b2 = self.unpack(theta)
        return -(np.tanh(self.s @ w1.T + b1) @ w2 + b2)

    def features(self, theta):
        w1, b1, w2, _ = self.unpack(theta)
        t = np.tanh(self.s @ w1.T + b1)
        dt = -w2 * (1 - t**2)  # ∂(-E)/∂u, u = W1 s + b1
        d_w1 = dt[:, :, None] * self.s[:, None, :]
        return np.concatenate([d_w1.reshape(len(self.s), -1), dt, -t, -np.ones((len(self.s), 1))], axis=1)

    def second(self, theta):
        w1, b1, w2, _ = self.unpack(theta)
        k, n, size = self.k, self.n, theta.size
        t = np.tanh(self.s @ w1.T + b1)
        x = np.concatenate([self.s, np.ones((len(self.s), 1))], axis=1)
        out = np.zeros((len(self.s), size, size))
        for unit in range(k):
            inner = np.r_[unit * n : (unit + 1) * n, k * n + unit]  # W1[unit], b1[unit]
            # ∂²(-E)/∂u² = -w2 tanh''(u) = 2 w2 t (1 - t²); ∂²(-E)/∂u ∂w2 = -(1 - t²).
            curv = 2 * w2[unit] * t[:, unit] * (1 - t[:, unit] ** 2)
            out[:, inner[:, None], inner[None, :]] = curv[:, None, None] * x[:, :, None] * x[:, None, :]
            cross = -(1 - t[:, unit] ** 2)[:, None] * x
            out[:, inner, k * n + k + unit] = cross
            out[:, k * n + k + unit, inner] = cross
        return out


def of(model):
    """The reference formulas for an ebmflow model (RBM, Ising, HigherOrderIsing, WalshModel, 1-layer tanh MLP)."""
    name = type(model).__name__
    if name == "RBM":
        return RBMRef.of(model)
    if name == "MLPEnergy":
        return MLPRef.of(model)
    return LinearRef.of(model)


# ----------------------------------------------------------------------------- objective


def probs(neg_e) -> np.ndarray:
    return np.exp(neg_e - logsumexp(neg_e))


def gradient(r, theta, p_data, penalty=0.0) -> np.ndarray:
    """``∇_θ [KL + (penalty/2)||θ||²] = Σ_s (p_θ - p_D)(s) D(s) + penalty·θ``."""
    p = probs(r.neg_energies(theta))
    return r.features(theta).T @ (p - p_data) + penalty * theta


def hessian(r, theta, p_data, penalty=0.0) -> np.ndarray:
    """Closed form ``Cov_θ(D) + Σ_s (p_θ - p_D)(s) ∂²(-E(s)) + penalty·I``."""
    p = probs(r.neg_energies(theta))
    d = r.features(theta)
    mean = p @ d
    cov = (d * p[:, None]).T @ d - np.outer(mean, mean)
    return cov + np.einsum("s,sij->ij", p - p_data, r.second(theta)) + penalty * np.eye(theta.size)


def hessian_fd(r, theta, p_data, penalty=0.0, h=1e-5) -> np.ndarray:
    """Central differences of the reference gradient."""
    return ref.central_difference(lambda t: gradient(r, t, p_data, penalty), theta, h)


def couplings(r, theta) -> np.ndarray:
    """``J = 2^-n H (-E)`` with the explicit Hadamard matrix, all subsets (``J[0]`` the gauge)."""
    return ref.couplings_from_neg_energies(r.neg_energies(theta))


def coupling_jacobian_fd(r, theta, h=1e-5) -> np.ndarray:
    """``G = ∂J_S/∂θ`` (rows ``S ≠ ∅``) by central differences of the reference couplings."""
    return ref.central_difference(lambda t: couplings(r, t)[1:], theta, h)


def order_norms(x) -> np.ndarray:
    """``||x_k||`` over the subsets of each order ``k = 0..n`` (by popcount, a loop)."""
    n = round(math.log2(len(x)))
    out = np.zeros(n + 1)
    for sub in range(2**n):
        out[ref.popcount(sub)] += x[sub] ** 2
    return np.sqrt(out)


def connected_pairs(p) -> np.ndarray:
    """``C^D - C^indep``: ``<s_i s_j> - <s_i><s_j>`` by sums over states, zero diagonal."""
    p = np.asarray(p, dtype=np.float64)
    n = round(math.log2(p.size))
    s = ref.states(n)
    mean = p @ s
    c = np.einsum("b,bi,bj->ij", p, s, s) - np.outer(mean, mean)
    np.fill_diagonal(c, 0.0)
    return c


def rank(matrix, rtol=1e-9) -> int:
    """Singular values above ``rtol · σ_max``."""
    sigma = np.linalg.svd(matrix, compute_uv=False)
    return int((sigma > rtol * sigma[0]).sum())
