"""Independent reference for the learning-dynamics tests, written the dumbest possible way.

NumPy over all 2**n states: per-state parameter gradients of ``-E`` from the
formula of each model class, the gradient ``∇θ KL = <∂θE>_D - <∂θE>_θ``
(THEORY §3), `scipy.integrate.solve_ivp` on it, the optax optimisers as plain
loops, per-order norms by popcount and the first-passage time of THEORY §6.
Nothing here calls ebmflow's numerics; models are only read for their parameters,
in a layout of this module's own (field by field, C order), not `ebmflow.flatten`'s.
"""

import math

import numpy as np
import reference as ref
from scipy.integrate import solve_ivp
from scipy.special import expit, logsumexp

# ----------------------------------------------------------------------------- parameters


def fields(model) -> list[str]:
    """The parameter fields of a model class, in this module's layout."""
    return {
        "RBM": ["weights", "visible_bias", "hidden_bias"],
        "Ising": ["fields", "couplings"],
        "HigherOrderIsing": ["couplings"],
        "WalshModel": ["couplings"],
    }[type(model).__name__]


def params(model, index=None) -> dict[str, np.ndarray]:
    """The parameters of ``model`` as NumPy arrays (``index`` picks one entry of stacked models)."""
    out = {}
    for name in fields(model):
        value = np.asarray(getattr(model, name), dtype=np.float64)
        out[name] = value if index is None else value[index]
    return out


def pack(p: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.ravel(v) for v in p.values()])


def unpack(theta: np.ndarray, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for name, value in like.items():
        out[name] = np.reshape(theta[start : start + value.size], value.shape)
        start += value.size
    return out


# ----------------------------------------------------------------------------- the loss and its gradient


class Problem:
    """``KL(p_D || p_θ)`` of one model class over all ``2**n`` states, on this module's flat parameters.

    ``per_state(θ)`` is the matrix ``D[s, i] = ∂(-E(s))/∂θ_i`` from the closed-form
    derivative of each energy; the gradient is ``∇KL = -Dᵀ (p_D - p_θ)``.
    """

    def __init__(self, model, p_data):
        self.kind = type(model).__name__
        self.n = model.n
        self.like = params(model)
        self.theta0 = pack(self.like)
        self.p_data = np.asarray(p_data, dtype=np.float64)
        self.states = ref.states(self.n)
        if self.kind == "RBM":
            self.f, self.df = {
                "spin": (lambda x: np.logaddexp(x, -x), np.tanh),  # ln 2cosh, and its derivative
                "bernoulli": (lambda x: np.logaddexp(0.0, x), expit),  # softplus
            }[model.hidden]
        elif self.kind == "Ising":
            self.pairs = list(zip(*np.triu_indices(self.n, 1)))
        else:
            subsets = model.subsets if self.kind == "HigherOrderIsing" else range(1, 2**self.n)
            self.chi = np.array([[ref.parity(s, sub) for sub in subsets] for s in self.states])

    def neg_energies(self, theta) -> np.ndarray:
        p, s = unpack(theta, self.like), self.states
        if self.kind == "RBM":
            x = s @ p["weights"].T + p["hidden_bias"]
            return s @ p["visible_bias"] + self.f(x).sum(1)
        if self.kind == "Ising":
            return s @ p["fields"] + sum(c * s[:, i] * s[:, j] for c, (i, j) in zip(p["couplings"], self.pairs))
        return self.chi @ p["couplings"]

    def per_state(self, theta) -> np.ndarray:
        p, s = unpack(theta, self.like), self.states
        if self.kind == "RBM":
            fx = self.df(s @ p["weights"].T + p["hidden_bias"])  # (2**n, m)
            d_weights = (fx[:, :, None] * s[:, None, :]).reshape(len(s), -1)
            return np.concatenate([d_weights, s, fx], axis=1)
        if self.kind == "Ising":
            return np.concatenate([s, np.stack([s[:, i] * s[:, j] for i, j in self.pairs], axis=1)], axis=1)
        return self.chi

    def probs(self, theta) -> np.ndarray:
        x = self.neg_energies(theta)
        return np.exp(x - logsumexp(x))

    def kl(self, theta) -> float:
        return ref.kl(self.neg_energies(theta), self.p_data)

    def grad(self, theta) -> np.ndarray:
        """``∇θ KL = <∂θE>_D - <∂θE>_θ``."""
        return -self.per_state(theta).T @ (self.p_data - self.probs(theta))

    def hessian(self, theta, h=1e-6) -> np.ndarray:
        """Central differences of `grad` (only the implicit solver's Newton matrix uses it)."""
        return ref.central_difference(self.grad, theta, h)

    def flow(self, ts, theta0=None, method="BDF") -> np.ndarray:
        """``θ(t)`` at ``ts`` of ``dθ/dt = -∇KL``, by `solve_ivp` at rtol 1e-10, atol 1e-12: ``(T, P)``."""
        theta0 = self.theta0 if theta0 is None else theta0
        sol = solve_ivp(
            lambda t, y: -self.grad(y), (0.0, ts[-1]), theta0, method=method, t_eval=ts,
            rtol=1e-10, atol=1e-12, jac=lambda t, y: -self.hessian(y),
        )
        assert sol.success, sol.message
        return sol.y.T

    def unpack(self, theta) -> dict[str, np.ndarray]:
        return unpack(theta, self.like)


# ----------------------------------------------------------------------------- optimisers as loops


def sgd(problem: Problem, lr: float, steps: int, momentum: float = 0.0) -> list[np.ndarray]:
    """``v ← g + β v``, ``θ ← θ - η v`` (heavy ball; plain SGD, the Euler scheme of the flow, for β = 0)."""
    theta, v, out = problem.theta0.copy(), np.zeros_like(problem.theta0), [problem.theta0.copy()]
    for _ in range(steps):
        v = problem.grad(theta) + momentum * v
        theta = theta - lr * v
        out.append(theta.copy())
    return out


def adam(problem: Problem, lr: float, steps: int, b1=0.9, b2=0.999, eps=1e-8) -> list[np.ndarray]:
    """Adam (Kingma & Ba 2015) with bias correction, ε outside the square root."""
    theta, mu, nu, out = problem.theta0.copy(), 0.0, 0.0, [problem.theta0.copy()]
    for t in range(1, steps + 1):
        g = problem.grad(theta)
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g**2
        theta = theta - lr * (mu / (1 - b1**t)) / (np.sqrt(nu / (1 - b2**t)) + eps)
        out.append(theta.copy())
    return out


# ----------------------------------------------------------------------------- per-order observables


def order_norms(v) -> np.ndarray:
    """``||v_k||`` for ``k = 0..n``: the norm over the subsets ``S`` with ``popcount(S) = k``."""
    v = np.asarray(v, dtype=np.float64)
    n = round(math.log2(v.size))
    return np.array([math.sqrt(sum(v[s] ** 2 for s in range(v.size) if ref.popcount(s) == k)) for k in range(n + 1)])


def observables(neg_e, p_data) -> dict[str, np.ndarray]:
    """KL, per-order moment mismatch, coupling error and coupling norms (gauge ``J_∅`` set to 0)."""
    p_model = np.exp(ref.log_probs(neg_e))
    j = ref.couplings_from_neg_energies(neg_e)
    j_star = ref.couplings_from_neg_energies(np.log(p_data))
    j[0] = j_star[0] = 0.0
    return dict(
        kl=ref.kl(neg_e, p_data),
        moment_mismatch=order_norms(ref.moments(p_model) - ref.moments(p_data)),
        coupling_error=order_norms(j - j_star),
        coupling_norms=order_norms(j),
    )


def first_passage(ts, delta, alpha) -> float:
    """First time with ``Δ <= α``: ``log Δ`` interpolated linearly in ``log t`` (in ``t`` from ``t = 0``)."""
    if np.all(np.isnan(delta)):
        return math.nan
    for i, d in enumerate(delta):
        if d <= alpha:
            if i == 0:
                return float(ts[0])
            frac = (math.log(delta[i - 1]) - math.log(alpha)) / (math.log(delta[i - 1]) - math.log(d))
            if ts[i - 1] > 0:
                return math.exp(math.log(ts[i - 1]) + frac * (math.log(ts[i]) - math.log(ts[i - 1])))
            return ts[i - 1] + frac * (ts[i] - ts[i - 1])
    return math.inf
