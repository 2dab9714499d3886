"""Independent reference for q-colour (Potts) variables, written the plain way (THEORY §9).

Loops over all ``q**n`` states in index order (``b = Σ_i v_i q**i``, site 0 least
significant), energies from each model's formula with explicit one-hot sums, the
zero-sum tensors by the inclusion–exclusion formula of THEORY §9, gradients by the
closed-form derivative of the Potts RBM, and `solve_ivp`. Nothing here calls ebmflow's
numerics; models are read only for their parameters.
"""

import itertools
import math

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import expit, logsumexp

# ----------------------------------------------------------------------------- states


def state(b: int, n: int, q: int) -> np.ndarray:
    """The colours of state index ``b``: digit ``i`` of ``b`` in base ``q``."""
    v = []
    for _ in range(n):
        v.append(b % q)
        b //= q
    return np.array(v)


def states(n: int, q: int) -> np.ndarray:
    return np.array([state(b, n, q) for b in range(q**n)])


def index(v, q: int) -> int:
    return sum(int(c) * q**i for i, c in enumerate(v))


def one_hot(v, q: int) -> np.ndarray:
    """``(n, q)`` with a 1 at each site's colour."""
    out = np.zeros((len(v), q))
    for i, c in enumerate(v):
        out[i, c] = 1.0
    return out


# ----------------------------------------------------------------------------- the basis (THEORY §9)


def helmert(q: int) -> np.ndarray:
    """Columns: 1/√q, then colour k against the mean of the colours before it, normalised (written out)."""
    u = np.zeros((q, q))
    for mu in range(q):
        u[mu, 0] = 1 / math.sqrt(q)
    for k in range(1, q):
        norm = math.sqrt(k * (k + 1))
        for mu in range(q):
            if mu < k:
                u[mu, k] = 1 / norm
            elif mu == k:
                u[mu, k] = -k / norm
    return u


def basis_function(v, k, q: int) -> float:
    """``φ_k(v) = Π_i √q U[v_i, k_i]``."""
    u = math.sqrt(q) * helmert(q)
    out = 1.0
    for vi, ki in zip(v, k):
        out *= u[vi, ki]
    return out


# ----------------------------------------------------------------------------- energies (-E of one state)


def softplus(x):
    return np.logaddexp(0.0, x)


def ln2cosh(x):
    return np.logaddexp(x, -x)


def potts_rbm_neg_energy(weights, visible_bias, hidden_bias, hidden, v) -> float:
    """``Σ_i b_i(v_i) + Σ_a f(c_a + Σ_i W_ai(v_i))`` with explicit one-hot sums."""
    m, _, q = weights.shape
    h = one_hot(v, q)
    out = float((visible_bias * h).sum())
    f = softplus if hidden == "bernoulli" else ln2cosh
    for a in range(m):
        out += f(hidden_bias[a] + (weights[a] * h).sum())
    return out


def potts_pairwise_neg_energy(fields, blocks, v) -> float:
    """``Σ_i h_i(v_i) + Σ_{i<j} J_ij(v_i, v_j)``, blocks in triu order."""
    n = len(v)
    out = sum(fields[i, v[i]] for i in range(n))
    for p, (i, j) in enumerate(zip(*np.triu_indices(n, 1))):
        out += blocks[p, v[i], v[j]]
    return out


def coupling_model_neg_energy(couplings, v, q: int) -> float:
    """``Σ_{k≠0} J_k φ_k(v)``, ``couplings[k-1] = J_k``."""
    n = len(v)
    return sum(couplings[b - 1] * basis_function(v, state(b, n, q), q) for b in range(1, q**n))


def mlp_neg_energy(layers, activation, v, q) -> float:
    act = {"tanh": np.tanh}[activation]
    x = one_hot(v, q).reshape(-1)
    for w, b in layers[:-1]:
        x = act(w @ x + b)
    w, b = layers[-1]
    return -float((w @ x + b)[0])


def _np(x):
    return np.asarray(x, dtype=np.float64)


def neg_energy(model, v) -> float:
    name, q = type(model).__name__, model.space.q
    if name == "PottsRBM":
        return potts_rbm_neg_energy(_np(model.weights), _np(model.visible_bias), _np(model.hidden_bias),
                                    model.hidden, v)
    if name == "PottsPairwise":
        return potts_pairwise_neg_energy(_np(model.fields), _np(model.couplings), v)
    if name == "CouplingModel":
        return coupling_model_neg_energy(_np(model.couplings), v, q)
    if name == "MLPEnergy":
        return mlp_neg_energy([(_np(ly.weight), _np(ly.bias)) for ly in model.layers], model.activation, v, q)
    if name == "ColourChain":
        return float(model.theta) * sum(float(v[i] == v[i + 1]) for i in range(len(v) - 1))
    raise NotImplementedError(name)


def neg_energies(model) -> np.ndarray:
    n, q = model.space.n, model.space.q
    return np.array([neg_energy(model, state(b, n, q)) for b in range(q**n)])


def log_probs(neg_e) -> np.ndarray:
    return neg_e - logsumexp(neg_e)


def kl(neg_e, p) -> float:
    return float(np.sum(p * (np.log(p) - log_probs(neg_e))))


# ----------------------------------------------------------------------------- effective model


def zero_sum_tensor(values, n: int, q: int, sites) -> np.ndarray:
    """``F_S(v_S) = Σ_{K⊆S} (-1)^{|S|-|K|} E_{v outside K}[F]`` (THEORY §9), axes in the order of ``sites``."""
    sites = list(sites)
    table = {tuple(state(b, n, q)): values[b] for b in range(q**n)}
    out = np.zeros((q,) * len(sites))
    for colours in itertools.product(range(q), repeat=len(sites)):
        total = 0.0
        for r in range(len(sites) + 1):
            for kept in itertools.combinations(range(len(sites)), r):
                # average F over the colours of every site outside K = {sites[m] : m in kept}
                fixed = {sites[m]: colours[m] for m in kept}
                free = [i for i in range(n) if i not in fixed]
                acc = 0.0
                for rest in itertools.product(range(q), repeat=len(free)):
                    v = [0] * n
                    for i, c in fixed.items():
                        v[i] = c
                    for i, c in zip(free, rest):
                        v[i] = c
                    acc += table[tuple(v)]
                total += (-1) ** (len(sites) - r) * acc / q ** len(free)
        out[colours] = total
    return out


def order_norms(values, n: int, q: int) -> np.ndarray:
    """``||J_k||² = Σ_{|S|=k} q^-|S| Σ_{v_S} F_S(v_S)²``, the normalised per-order norms of THEORY §9."""
    norms = np.zeros(n + 1)
    for k in range(1, n + 1):
        for sites in itertools.combinations(range(n), k):
            norms[k] += (zero_sum_tensor(values, n, q, sites) ** 2).sum() / q**k
    return np.sqrt(norms)


def couplings(values, n: int, q: int) -> np.ndarray:
    """``J_k = q^-n Σ_v F(v) φ_k(v)`` for every basis index, as a loop."""
    out = np.zeros(q**n)
    for k in range(q**n):
        kk = state(k, n, q)
        out[k] = sum(values[b] * basis_function(state(b, n, q), kk, q) for b in range(q**n)) / q**n
    return out


def central_difference(f, x, h: float = 1e-5) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


# ----------------------------------------------------------------------------- Potts RBM flow


class PottsRBMProblem:
    """``KL(p_D || p_θ)`` of a Potts RBM on flat parameters ``(W (m, n, q), b (n, q), c (m,))`` in C order.

    ``per_state`` is ``∂(-E(v))/∂θ`` from the closed form: ``∂/∂W_ai(μ) = f'(x_a) [v_i = μ]``,
    ``∂/∂b_i(μ) = [v_i = μ]``, ``∂/∂c_a = f'(x_a)``.
    """

    def __init__(self, model, p_data):
        self.shapes = [model.weights.shape, model.visible_bias.shape, model.hidden_bias.shape]
        self.theta0 = np.concatenate([_np(model.weights).ravel(), _np(model.visible_bias).ravel(),
                                      _np(model.hidden_bias).ravel()])
        self.hidden = model.hidden
        _, n, q = self.shapes[0]
        self.onehots = np.array([one_hot(v, q) for v in states(n, q)])  # (q**n, n, q)
        self.p_data = np.asarray(p_data, dtype=np.float64)

    def unpack(self, theta):
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, self.shapes)]

    def neg_energies(self, theta):
        w, b, c = self.unpack(theta)
        x = np.einsum("sni,ani->sa", self.onehots, w) + c
        f = softplus if self.hidden == "bernoulli" else ln2cosh
        return np.einsum("sni,ni->s", self.onehots, b) + f(x).sum(1)

    def per_state(self, theta):
        w, _, c = self.unpack(theta)
        x = np.einsum("sni,ani->sa", self.onehots, w) + c
        df = expit(x) if self.hidden == "bernoulli" else np.tanh(x)
        d_w = np.einsum("sa,sni->sani", df, self.onehots).reshape(len(x), -1)
        return np.concatenate([d_w, self.onehots.reshape(len(x), -1), df], axis=1)

    def grad(self, theta):
        x = self.neg_energies(theta)
        p = np.exp(x - logsumexp(x))
        return -self.per_state(theta).T @ (self.p_data - p)

    def kl(self, theta):
        return kl(self.neg_energies(theta), self.p_data)

    def flow(self, ts):
        sol = solve_ivp(lambda t, y: -self.grad(y), (0.0, ts[-1]), self.theta0, method="BDF", t_eval=ts,
                        rtol=1e-10, atol=1e-12, jac=lambda t, y: -central_difference(self.grad, y, 1e-6))
        assert sol.success, sol.message
        return sol.y.T
