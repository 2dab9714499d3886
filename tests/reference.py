"""Independent reference mathematics for the tests, written the dumbest possible way.

Plain NumPy and Python loops over all 2**n states, re-derived from the formulas
of THEORY.md; nothing here calls ebmflow's numerics. Models are only read for
their parameters (as NumPy arrays). Conventions (THEORY §1): state index ``b``
has spins ``s_i = 1 - 2*bit_i(b)``; a subset ``S`` is a bitmask, site ``i`` is bit ``i``.
"""

import itertools
import math

import numpy as np
from scipy.special import logsumexp

# ----------------------------------------------------------------------------- state space


def bit(b: int, i: int) -> int:
    return (b >> i) & 1


def popcount(x: int) -> int:
    return int(x).bit_count()


def state(b: int, n: int) -> np.ndarray:
    """The spins of state index ``b``."""
    return np.array([1.0 - 2.0 * bit(b, i) for i in range(n)])


def states(n: int) -> np.ndarray:
    """All ``2**n`` states in index order, shape ``(2**n, n)``."""
    return np.array([state(b, n) for b in range(2**n)])


def index(s) -> int:
    """The index of one ±1 state."""
    return sum(2**i for i, si in enumerate(s) if si == -1)


def parity(s, subset: int) -> float:
    """``χ_S(s) = Π_{i∈S} s_i``."""
    out = 1.0
    for i in range(len(s)):
        if bit(subset, i):
            out *= s[i]
    return out


# ----------------------------------------------------------------------------- energies (-E of one state)


def ising_neg_energy(fields, couplings, s) -> float:
    """``-E = h·s + Σ_{i<j} J_ij s_i s_j``, couplings in ``numpy.triu_indices(n, 1)`` order."""
    n = len(s)
    out = sum(fields[i] * s[i] for i in range(n))
    for k, (i, j) in enumerate(zip(*np.triu_indices(n, 1))):
        out += couplings[k] * s[i] * s[j]
    return out


def higher_order_neg_energy(subsets, couplings, s) -> float:
    """``-E = Σ_S J_S Π_{i∈S} s_i`` over the given bitmask subsets."""
    return sum(j * parity(s, sub) for sub, j in zip(subsets, couplings))


def walsh_neg_energy(couplings, s) -> float:
    """``-E = Σ_{S≠∅} J_S χ_S(s)`` with ``couplings[S-1] = J_S``."""
    return sum(couplings[sub - 1] * parity(s, sub) for sub in range(1, 2 ** len(s)))


def ln2cosh(x):
    return np.log(2 * np.cosh(x))


def lncosh(x):
    return np.log(np.cosh(x))


def softplus(x):
    return np.log(1 + np.exp(x))


def rbm_neg_energy(weights, visible_bias, hidden_bias, hidden: str, s) -> float:
    """``-E = a·s + Σ_a f(b_a + W_a·s)``, f = ln 2cosh (spin hidden units) or softplus (bernoulli)."""
    f = {"spin": ln2cosh, "bernoulli": softplus}[hidden]
    out = float(np.dot(visible_bias, s))
    for a in range(len(hidden_bias)):
        out += f(hidden_bias[a] + sum(weights[a, j] * s[j] for j in range(len(s))))
    return out


ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    # jax.nn.gelu's default is the tanh approximation.
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "softplus": softplus,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
}


def mlp_neg_energy(layers, activation: str, s) -> float:
    """``-E = -MLP(s)`` for ``layers = [(W, b), ...]``, activation between layers."""
    x = np.asarray(s, dtype=float)
    for k, (w, b) in enumerate(layers):
        x = w @ x + b
        if k < len(layers) - 1:
            x = ACTIVATIONS[activation](x)
    return -float(x[0])


def chain_neg_energy(theta, s) -> float:
    """The user-defined ``Pairwise`` model of the `AbstractEnergy` docstring: ``-E = θ Σ_i s_i s_{i+1}``."""
    return theta * sum(s[i] * s[i + 1] for i in range(len(s) - 1))


def _np(x):
    return np.asarray(x, dtype=np.float64)


def neg_energy(model, s) -> float:
    """``-E(s)`` of an ebmflow model, from its parameters and the formula of its class."""
    name = type(model).__name__
    if name == "Ising":
        return ising_neg_energy(_np(model.fields), _np(model.couplings), s)
    if name == "HigherOrderIsing":
        return higher_order_neg_energy(model.subsets, _np(model.couplings), s)
    if name == "WalshModel":
        return walsh_neg_energy(_np(model.couplings), s)
    if name == "RBM":
        return rbm_neg_energy(
            _np(model.weights), _np(model.visible_bias), _np(model.hidden_bias), model.hidden, s
        )
    if name == "MLPEnergy":
        layers = [(_np(layer.weight), _np(layer.bias)) for layer in model.layers]
        return mlp_neg_energy(layers, model.activation, s)
    if name == "Pairwise":
        return chain_neg_energy(float(model.theta), s)
    raise NotImplementedError(f"no reference formula for {name}")


def neg_energies(model) -> np.ndarray:
    """``-E`` of every state, index order."""
    return np.array([neg_energy(model, state(b, model.n)) for b in range(2**model.n)])


# ----------------------------------------------------------------------------- exact quantities


def log_partition(neg_e) -> float:
    return float(logsumexp(neg_e))


def log_probs(neg_e) -> np.ndarray:
    return np.asarray(neg_e) - logsumexp(neg_e)


def entropy(p) -> float:
    return -float(np.sum(p * np.log(p)))


def nll(neg_e, p_data) -> float:
    """Cross-entropy ``-Σ_s p_D(s) ln p_θ(s)``."""
    return -float(np.sum(p_data * log_probs(neg_e)))


def kl(neg_e, p_data) -> float:
    """``KL(p_D || p_θ) = Σ_s p_D (ln p_D - ln p_θ)``."""
    return float(np.sum(p_data * (np.log(p_data) - log_probs(neg_e))))


# ----------------------------------------------------------------------------- Walsh–Hadamard


def hadamard(n: int) -> np.ndarray:
    """Sylvester's matrix by Kronecker products: ``H[S, b] = (-1)^popcount(S & b)``."""
    h1 = np.array([[1.0, 1.0], [1.0, -1.0]])
    h = np.ones((1, 1))
    for _ in range(n):
        h = np.kron(h1, h)
    return h


def hadamard_by_popcount(n: int) -> np.ndarray:
    """The same matrix entry by entry, to check the Kronecker ordering."""
    return np.array([[(-1.0) ** popcount(a & b) for b in range(2**n)] for a in range(2**n)])


def couplings_from_neg_energies(neg_e) -> np.ndarray:
    """``J = 2^-n H (-E)``, all subsets, ``J[0] = J_∅``."""
    neg_e = np.asarray(neg_e, dtype=float)
    n = round(math.log2(neg_e.size))
    return hadamard(n) @ neg_e / 2**n


def couplings_by_sum(neg_e, subset: int) -> float:
    """``J_S = 2^-n Σ_s (-E(s)) χ_S(s)`` as a loop."""
    n = round(math.log2(len(neg_e)))
    return sum(neg_e[b] * parity(state(b, n), subset) for b in range(2**n)) / 2**n


def moments(p) -> np.ndarray:
    """``m_S = Σ_s p(s) χ_S(s)`` for every subset."""
    p = np.asarray(p, dtype=float)
    n = round(math.log2(p.size))
    return hadamard(n) @ p


def subsets_of_order(n: int, k: int) -> list[int]:
    return [sub for sub in range(2**n) if popcount(sub) == k]


def binary_polynomial(coefficients, v) -> float:
    """``Σ_T K_T Π_{i∈T} v_i`` at one {0,1} vector ``v``."""
    total = 0.0
    for t in range(len(coefficients)):
        term = coefficients[t]
        for i in range(len(v)):
            if bit(t, i):
                term *= v[i]
        total += term
    return total


def spin_polynomial(couplings, s) -> float:
    """``Σ_S J_S χ_S(s)``."""
    return sum(couplings[sub] * parity(s, sub) for sub in range(len(couplings)))


# ----------------------------------------------------------------------------- RBMs (THEORY §7)


def bernoulli_rbm_log_probs(weights, visible_bias, hidden_bias) -> np.ndarray:
    """``ln p(s)`` of the standard {0,1}/{0,1} RBM, hidden units summed one configuration at a time.

    ``E(v, h) = -bᵀv - cᵀh - hᵀWv`` and ``v_i = (s_i + 1)/2`` (``s = 2v - 1``).
    """
    m, n = weights.shape
    free = []
    for b in range(2**n):
        v = (state(b, n) + 1) / 2
        terms = [
            visible_bias @ v + hidden_bias @ np.array(h) + np.array(h) @ weights @ v
            for h in itertools.product((0.0, 1.0), repeat=m)
        ]
        free.append(logsumexp(terms))
    return log_probs(np.array(free))


def rbm_coupling_closed_form(weights, visible_bias, hidden_bias, subset: int, f=lncosh) -> float:
    """Exact ``J_S`` of ``-E = η·s + Σ_a f(θ_a + w_a·s)`` (THEORY §7), ``S ≠ ∅``.

    ``J_S = 2^-k Σ_a Σ_{τ∈{±1}^S} (Π τ) E_X[f(θ_a + Σ_{j∈S} w_aj τ_j + X_a)] (+ η_j if k = 1)``
    with ``X_a = Σ_{j∉S} w_aj s_j`` averaged exactly over the uniform spins outside S.
    """
    m, n = weights.shape
    inside = [j for j in range(n) if bit(subset, j)]
    outside = [j for j in range(n) if not bit(subset, j)]
    k = len(inside)
    total = 0.0
    for a in range(m):
        for tau in itertools.product((-1.0, 1.0), repeat=k):
            field = hidden_bias[a] + sum(weights[a, j] * t for j, t in zip(inside, tau))
            mean = np.mean(
                [f(field + sum(weights[a, j] * x for j, x in zip(outside, rest)))
                 for rest in itertools.product((-1.0, 1.0), repeat=len(outside))]
            )
            total += np.prod(tau) * mean
    total /= 2**k
    if k == 1:
        total += visible_bias[inside[0]]
    return total


# ----------------------------------------------------------------------------- samples


def empirical_probs(spins, n: int, pseudocount: float = 0.0) -> np.ndarray:
    """``p(s) = (count(s) + α) / (M + α 2^n)`` by counting rows."""
    counts = np.zeros(2**n)
    for row in spins:
        counts[index(row)] += 1
    return (counts + pseudocount) / (len(spins) + pseudocount * 2**n)


# ----------------------------------------------------------------------------- finite differences


def central_difference(f, x, h: float = 1e-5) -> np.ndarray:
    """Gradient (or Jacobian, for vector-valued f) by central differences: shape ``f(x).shape + x.shape``."""
    x = np.asarray(x, dtype=np.float64)
    columns = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        columns.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(columns, axis=-1)
