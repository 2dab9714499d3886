"""Stability of a (near-)stationary point: spectra, expressivity, neutral directions (THEORY §4–5)."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import finite_number, is_finite_number, prng_key
from .._objective import Objective
from .._tree import cast_parameters, flatten
from ..effective._couplings import model_couplings
from ..effective._jacobian import check_jacobian_fits, jacobian
from ..exact._divergence import check_pair
from ..exact._sums import all_neg_energies, check_sum
from ._spectrum import dense_hessian, lanczos_extremes


@dataclasses.dataclass(frozen=True)
class StabilityReport:
    """What `stability` found at one point. Arrays are NumPy; thresholds are stated in ``thresholds``.

    - ``kind``: ``"data-consistent"`` (stationary, KL ≈ 0), ``"spurious"`` (stationary, KL > 0)
      or ``"not stationary"``; ``kl`` (nats), ``grad_norm``, ``moment_mismatch (n+1,)`` per order.
    - ``method``: ``"dense"`` (all eigenvalues) or ``"lanczos"`` (extremes only; counts are None).
    - ``eigenvalues``: ascending; ``eigenvectors (P, P)`` as columns if asked for.
    - ``n_stable``, ``n_neutral``, ``n_unstable``: ``λ > t``, ``|λ| <= t``, ``λ < -t`` with
      ``t = eig_rtol · max|λ|``.
    - ``rank``, ``singular_values``: of the coupling Jacobian ``G`` (rows S ≠ ∅), counted above
      ``rank_rtol · σ_max``; ``generic_rank``: the same at random parameters of this architecture;
      ``n_couplings = q**n - 1`` (``2**n - 1`` for spins); ``n_params = P``.
    - ``decomposition``: Frobenius norms of ``∇²L``, ``GᵀCG``, ``Σ_S g_S ∇²J_S`` and the relative
      residual of ``∇²L = GᵀCG + Σ_S g_S ∇²J_S (+ penalty·I)`` (dense only).
    - ``neutral``: ``max ||G v||`` over neutral eigenvectors, and ``||J(θ+εv) - J(θ)||`` for
      ``epsilons`` along the first neutral eigenvector with its log-log ``slope`` (2 means O(ε²);
      ``inf`` when no change exceeds rounding, an exact invariance such as the gauge of a model
      linear in its parameters).
    """

    kind: str
    kl: float
    grad_norm: float
    moment_mismatch: np.ndarray
    method: str
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray | None
    n_stable: int | None
    n_neutral: int | None
    n_unstable: int | None
    rank: int
    singular_values: np.ndarray
    generic_rank: int
    n_couplings: int
    n_params: int
    decomposition: dict | None
    neutral: dict | None
    thresholds: dict

    def summary(self) -> str:
        """A few lines for humans."""
        lines = [
            f"{self.kind}: KL = {self.kl:.3e} nats, ||∇L|| = {self.grad_norm:.3e}",
            f"coupling Jacobian rank {self.rank} of {self.n_couplings} couplings "
            f"(generic rank {self.generic_rank}, {self.n_params} parameters)",
        ]
        if self.method == "dense":
            lines.append(
                f"Hessian ({self.method}): {self.n_stable} stable, {self.n_neutral} neutral, "
                f"{self.n_unstable} unstable; "
                f"λ in [{self.eigenvalues[0]:.3e}, {self.eigenvalues[-1]:.3e}]"
            )
        else:
            lam = self.eigenvalues
            lines.append(f"Hessian (Lanczos): extreme eigenvalues {lam[0]:.3e} ... {lam[-1]:.3e}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (eigenvectors left out)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "eigenvectors":
                continue
            out[field.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return out


def random_like(model, key, scale: float = 0.5):
    """The same architecture with every parameter i.i.d. ``N(0, scale²)``."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)


def _rank(g: np.ndarray, rtol: float) -> tuple[int, np.ndarray]:
    sigma = np.linalg.svd(g, compute_uv=False)
    return int((sigma > rtol * sigma[0]).sum()) if sigma.size and sigma[0] > 0 else 0, sigma


def gauss_newton(g: np.ndarray, p: np.ndarray, space) -> np.ndarray:
    """``Gᵀ C G`` with ``C_kl = <φ_k φ_l> - <φ_k><φ_l>`` under ``p`` (``k, l ≠ 0``), ``(P, P)``, never forming ``C``.

    With ``A = Φ G`` (``Φ[v, k] = φ_k(v)``; each column of ``G`` taken back to a function of the
    state by `values`), ``Gᵀ C G = Aᵀ diag(p) A - (pᵀA)ᵀ(pᵀA)``: O(P q**n) memory, like ``G``,
    instead of the ``(q**n - 1)²`` numbers of ``C``, for spins and colours alike.
    """
    g_full = np.vstack([np.zeros((1, g.shape[1])), g])  # G_0 = 0: the sums skip k, l = 0
    a = np.asarray(space.values(jnp.asarray(g_full.T))).T  # (q**n, P)
    a_mean = p @ a
    return (a * p[:, None]).T @ a - np.outer(a_mean, a_mean)


@eqx.filter_jit
def _point(model, target, penalty):
    """KL, ``||∇L||``, ``p_θ`` and the moments of model and target at one point, in one compiled call."""
    objective = Objective(model)
    observed = objective.observe(objective.theta0[None], target, penalty)
    p_model, transform = jax.nn.softmax(all_neg_energies(model)), model.space.transform
    return observed["kl"][0], observed["grad_norm"][0], p_model, transform(p_model), transform(target.probs)


_jacobian = eqx.filter_jit(jacobian)


@eqx.filter_jit
def _curvature(model, weights):
    """``Σ_S w_S ∇²_θ J_S`` over the flattened parameters."""
    theta, unflatten = flatten(model)
    return jax.hessian(lambda t: weights @ model_couplings(unflatten(t))[1:])(theta)


def stability(
    model, target, *, penalty: float = 0.0, eig_rtol: float = 1e-9, rank_rtol: float = 1e-9,
    grad_tol: float = 1e-6, kl_tol: float = 1e-8, eigenvectors: bool = False, dense_limit: int = 4000,
    epsilons=(1e-1, 1e-2, 1e-3), key=None,
) -> StabilityReport:
    """Classify a point and describe the loss landscape around it (THEORY §4–5).

    ``kind`` is decided from ``||∇L|| <= grad_tol`` (stationary) and ``KL <= kl_tol``
    (data-consistent). It runs in float64, as `fixed_point` does (a float32 model is cast:
    float32 rounding, about 1e-7 of the largest eigenvalue, would mix neutral and weakly
    stable directions). Up to ``dense_limit`` parameters the Hessian is dense; beyond, its
    extreme eigenvalues come from Lanczos on Hessian-vector products. The ranks always come
    from the dense ``(q**n - 1, P)`` coupling Jacobian and its SVD, here and at a random point
    (``key``, a JAX random key, seeds it), so a model whose ``G`` exceeds the memory budget is
    refused by name even in Lanczos mode. Exact sums run in chunks of the model's space (as in
    `ebmflow.kl`).
    """
    check_pair(model, target)
    model, target = cast_parameters(model, jnp.float64), target.astype(jnp.float64)
    check_sum(model, 2, "stability")
    check_jacobian_fits(model)
    finite_number("penalty", penalty)
    for name, value in dict(eig_rtol=eig_rtol, rank_rtol=rank_rtol, grad_tol=grad_tol, kl_tol=kl_tol).items():
        finite_number(name, value, positive=True)
    if np.ndim(epsilons) != 1 or np.size(epsilons) == 0 or not all(
            is_finite_number(e, positive=True) for e in np.asarray(epsilons).tolist()):
        raise ValueError(f"epsilons must be a non-empty sequence of finite numbers > 0 (the step sizes of the "
                         f"neutral-direction probe); got {epsilons!r}")
    if isinstance(dense_limit, bool) or not isinstance(dense_limit, (int, np.integer)) or dense_limit < 0:
        raise ValueError(f"dense_limit must be an int >= 0 (the most parameters for a dense Hessian; beyond, "
                         f"Lanczos); got {dense_limit!r}")
    key = jax.random.key(0) if key is None else prng_key(key)
    theta, unflatten = flatten(model)
    pen = jnp.asarray(penalty, target.probs.dtype)
    kl_value, grad_norm, p_model, m_model, m_data = (np.asarray(x) for x in _point(model, target, pen))
    kl_value, grad_norm = float(kl_value), float(grad_norm)
    if not (np.isfinite(kl_value) and np.isfinite(grad_norm)):
        raise ValueError(f"stability needs a point where the loss and its gradient are finite; got KL = {kl_value}, "
                         f"||∇L|| = {grad_norm} (NaN or infinite energies or gradients of the model here)")
    mismatch = np.asarray(model.space.order_norms(m_model - m_data))
    if grad_norm > grad_tol:
        kind = "not stationary"
    else:
        kind = "data-consistent" if kl_value <= kl_tol else "spurious"
    g = np.asarray(_jacobian(model))
    if not np.all(np.isfinite(g)):
        raise ValueError("stability: the coupling Jacobian has NaN or infinite entries at this point (the model's "
                         "couplings are not differentiable here)")
    rank, sigma = _rank(g, rank_rtol)
    generic_rank, _ = _rank(np.asarray(_jacobian(random_like(model, key))), rank_rtol)
    size = theta.shape[0]
    thresholds = dict(grad_tol=grad_tol, kl_tol=kl_tol, eig_rtol=eig_rtol, rank_rtol=rank_rtol, penalty=penalty)
    common = dict(
        kind=kind, kl=kl_value, grad_norm=grad_norm, moment_mismatch=mismatch, rank=rank, singular_values=sigma,
        generic_rank=generic_rank, n_couplings=g.shape[0], n_params=size, thresholds=thresholds,
    )
    if size > dense_limit:
        smallest, largest = lanczos_extremes(model, target, penalty)
        return StabilityReport(
            method="lanczos", eigenvalues=np.concatenate([smallest, largest]), eigenvectors=None, n_stable=None,
            n_neutral=None, n_unstable=None, decomposition=None, neutral=None, **common,
        )
    h = np.asarray(dense_hessian(model, target.probs, pen))
    if not np.all(np.isfinite(h)):
        raise ValueError("stability: the Hessian has NaN or infinite entries at this point (the model's second "
                         "derivatives are not finite here)")
    lam, vec = np.linalg.eigh(h)
    t = eig_rtol * np.abs(lam).max()
    neutral_vecs = vec[:, np.abs(lam) <= t]
    return StabilityReport(
        method="dense", eigenvalues=lam, eigenvectors=vec if eigenvectors else None,
        n_stable=int((lam > t).sum()), n_neutral=int(neutral_vecs.shape[1]), n_unstable=int((lam < -t).sum()),
        decomposition=_decomposition(model, h, g, p_model, m_model, m_data, penalty),
        neutral=_neutral(theta, unflatten, g, neutral_vecs, epsilons), **common,
    )


def _decomposition(model, h, g, probs, m_model, m_data, penalty) -> dict:
    """Norms in ``∇²L = GᵀCG + Σ_S g_S ∇²J_S + penalty·I``."""
    gn = gauss_newton(g, np.asarray(probs), model.space)
    curvature = np.asarray(_curvature(model, jnp.asarray(m_model - m_data)[1:]))
    residual = h - gn - curvature - penalty * np.eye(h.shape[0])
    norm = np.linalg.norm(h)
    relative = np.linalg.norm(residual) / norm if norm > 0 else np.nan  # a zero Hessian: no relative residual
    return dict(
        hessian_norm=float(norm), gauss_newton_norm=float(np.linalg.norm(gn)),
        curvature_norm=float(np.linalg.norm(curvature)), relative_residual=float(relative),
    )


def _neutral(theta, unflatten, g, vecs, epsilons) -> dict | None:
    """First- and second-order invariance of the couplings along neutral directions."""
    if vecs.shape[1] == 0:
        return None
    j0 = np.asarray(model_couplings(unflatten(theta)))[1:]
    v = jnp.asarray(vecs[:, 0])
    changes = [float(np.linalg.norm(np.asarray(model_couplings(unflatten(theta + e * v)))[1:] - j0)) for e in epsilons]
    rounding = 100 * np.finfo(j0.dtype).eps * max(float(np.linalg.norm(j0)), 1.0)
    if max(changes) <= rounding:  # an exact invariance (a gauge of a model linear in its parameters): no power law
        slope = math.inf
    else:
        slope = float(np.polyfit(np.log(epsilons), np.log(np.maximum(changes, 1e-300)), 1)[0])
    return dict(
        max_g_v=float(np.linalg.norm(g @ vecs, axis=0).max()), epsilons=list(epsilons), coupling_changes=changes,
        slope=slope,
    )
