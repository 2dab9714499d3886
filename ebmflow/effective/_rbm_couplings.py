"""Effective couplings of RBMs beyond enumeration: the large-N (central-limit) method of THEORY §10.

For a site tuple ``I`` and hidden unit ``a``, the other sites' input ``X_a = Σ_{l∉I} W_al(v_l)``
(colours uniform, weights in the zero-sum gauge) is taken Gaussian, ``X_a ≈ σ_a z`` with
``σ_a² = (1/q) Σ_{l∉I} Σ_μ W_al(μ)²``. Then

    T_I(μ_I) = Σ_a E_z[f(c_a + Σ_{k∈I} W_{a i_k}(μ_k) + σ_a z)],

a one-dimensional Gaussian integral per hidden unit and colour tuple, and the coupling tensor
is its zero-sum projection (each colour axis centred). Fields add the gauged visible bias.
Binary RBMs are the case ``q = 2`` with ``W_ai(v) = W_ai s(v)``, ``s(v) = 1 - 2v`` (already zero-sum).

The integral uses a uniform (trapezoid) rule in ``z`` on ``[-6, 6]`` with weights normalised to
the Gaussian (spectrally accurate for integrands analytic in a strip), with a step fitted to
the largest ``σ_a`` of the model (`quadrature`); the evaluation ``f = log1p(e^{x})`` (softplus)
or ``log(e^x + e^{-x})`` (``ln 2cosh``) is done on products of precomputed exponentials.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jaxtyping import Array, Float

from .._budget import check_memory, check_states
from .._numerics import log_2cosh, softplus
from ..energies._rbm import RBM, AbstractRBM
from ._couplings import couplings
from ._tensors import check_site_tuples, tensors_from_couplings

Z_RANGE = 6.0  # the quadrature covers z in [-6, 6]: the Gaussian mass outside is 2e-9
_STRIP = {"bernoulli": math.pi, "spin": math.pi / 2}  # half-width of the strip where f is analytic


def quadrature(sigma_max: float, hidden: str, nodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z_k`` and weights of the normalised trapezoid rule for ``E_z[g(z)]``, ``z ~ N(0, 1)``.

    Uniform nodes on ``[-6, 6]``, weights ``∝ h φ(z_k)`` (halved at the ends) summing to 1.
    Its error for ``f(m + σ z)`` decays like ``exp(-2π d / (σ h))`` (``d`` the half-width of the
    strip where ``f`` is analytic: π for softplus, π/2 for ``ln 2cosh``), so the default number of
    nodes is the smallest odd count, at least 17, with ``σ_max h <= 1.6 d / π``. Measured against
    a 300-node Gauss–Hermite reference over ``m ∈ [-10, 10]``: at most 5e-6 for softplus at
    ``σ <= 4`` (17 nodes up to ``σ = 2``) and 2e-5 for ``ln 2cosh`` at ``σ <= 6``, always below
    the papers' un-normalised 21-point rule on ``[-5, 5]`` (9e-6 at ``σ = 2``, 7e-4 at ``σ = 6``).
    """
    if nodes is None:
        h_max = 1.6 * _STRIP[hidden] / math.pi / max(sigma_max, 1e-12)
        nodes = max(17, math.ceil(2 * Z_RANGE / h_max) + 1)
        nodes += 1 - nodes % 2
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 3:
        raise ValueError(f"nodes must be an int >= 3 (quadrature nodes per Gaussian integral); got {nodes!r}")
    z = np.linspace(-Z_RANGE, Z_RANGE, int(nodes))
    w = np.exp(-(z**2) / 2)
    w[[0, -1]] /= 2
    return z, w / w.sum()


class PottsForm(eqx.Module):
    """An RBM as zero-sum Potts arrays: ``weights (m, n, q)``, ``hidden_bias (m,)``, ``visible_bias (n, q)``.

    ``rest (m, n)`` holds ``(1/q) Σ_μ W_al(μ)²``: a site's share of the hidden unit's input variance.
    """

    weights: Float[Array, "m n q"]
    hidden_bias: Float[Array, " m"]
    visible_bias: Float[Array, "n q"]
    hidden: str = eqx.field(static=True)
    spins: bool = eqx.field(static=True)

    @property
    def rest(self):
        return (self.weights**2).mean(-1)


def potts_form(rbm: AbstractRBM) -> PottsForm:
    """The zero-sum Potts arrays of a binary or Potts RBM (THEORY §7, §9)."""
    if isinstance(rbm, RBM):
        w, a = rbm.weights, rbm.visible_bias  # colour 0 is s = +1, colour 1 is s = -1
        return PottsForm(jnp.stack([w, -w], -1), rbm.hidden_bias, jnp.stack([a, -a], -1), rbm.hidden, True)
    g = rbm.zero_sum_gauge()
    return PottsForm(g.weights, g.hidden_bias, g.visible_bias, g.hidden, False)


def _hidden_function(hidden: str, stable: bool):
    """``f`` at ``x = log(t)`` from ``t = e^x`` (fast path), or at ``x`` (stable path, any range)."""
    if stable:
        return softplus if hidden == "bernoulli" else log_2cosh
    return jnp.log1p if hidden == "bernoulli" else (lambda t: jnp.log(t + 1 / t))


def _project(t: Array, k: int) -> Array:
    """Zero-sum projection of the last ``k`` colour axes: ``Σ_{K⊆I} (-1)^{|K|} ⟨T⟩_K`` (centre each axis)."""
    for axis in range(t.ndim - k, t.ndim):
        t = t - t.mean(axis, keepdims=True)
    return t


def _colour_sums(form: PottsForm, sites: Array) -> Array:
    """``Σ_m W_{a, sites[b, m]}(μ_m)`` for every colour tuple: ``(B, q, ..., q, m)``."""
    b, k = sites.shape
    q = form.weights.shape[-1]
    out = jnp.zeros((b,) + (1,) * k + form.weights.shape[:1], form.weights.dtype)
    for m in range(k):
        w = jnp.moveaxis(form.weights[:, sites[:, m], :], 0, -1)  # (B, q, M)
        shape = [b] + [1] * k + [w.shape[-1]]
        shape[1 + m] = q
        out = out + w.reshape(shape)
    return out


def _gaussian_tensors(form: PottsForm, sites: Array, extra: Array | None, z, w, stable: bool) -> Array:
    """``Σ_a E_z f(c_a + Σ_{k∈I} W + [mean over extra sites' colours] + σ_a z)``, zero-sum projected: ``(B, q^k)``.

    ``extra (B, m, e)`` lists, per tuple and hidden unit, sites averaged exactly over their
    colours (the outliers of the mixture refinement; site ``n`` is a dummy with zero weights).
    """
    k = sites.shape[1]
    q, dtype = form.weights.shape[-1], form.weights.dtype
    rest = form.rest
    variance = rest.sum(1)[None] - rest[:, sites].sum(-1).T  # (B, m)
    loc = _colour_sums(form, sites) + form.hidden_bias  # (B, q.., m)
    if extra is not None:
        padded = jnp.concatenate([form.weights, jnp.zeros_like(form.weights[:, :1])], axis=1)
        rest_padded = jnp.concatenate([rest, jnp.zeros_like(rest[:, :1])], axis=1)
        units = jnp.arange(rest.shape[0])
        variance = variance - rest_padded[units[None, :, None], extra].sum(-1)
        ex = padded[units[None, :, None], extra]  # (B, m, e, q)
        combos = jnp.zeros((*ex.shape[:2], 1), dtype)
        for j in range(ex.shape[2]):  # every colour combination of the extra sites: (B, m, q**e)
            combos = (combos[..., :, None] + ex[:, :, j, None, :]).reshape(*ex.shape[:2], -1)
        batch, units_, colours = combos.shape
        loc = loc[..., None, :] + jnp.swapaxes(combos, 1, 2).reshape((batch,) + (1,) * k + (colours, units_))
    sigma = jnp.sqrt(jnp.maximum(variance, 0))  # (B, m)
    sigma = sigma.reshape((sigma.shape[0],) + (1,) * (loc.ndim - 2) + (sigma.shape[1],))
    f = _hidden_function(form.hidden, stable)
    base = loc if stable else jnp.exp(loc)

    def node(i, acc):  # one quadrature node, summed over hidden units at once (the accumulator stays small)
        shift = sigma * z[i]
        x = base + shift if stable else base * jnp.exp(shift)
        return acc + w[i] * f(x).sum(-1)

    t = jax.lax.fori_loop(0, z.shape[0], node, jnp.zeros(loc.shape[:-1], dtype))
    if extra is not None:
        t = t.mean(-1)  # the exact average over the extra sites' colours
    return _project(t, k).reshape(t.shape[0], q**k)


def outliers(form: PottsForm, tau: float) -> list[np.ndarray]:
    """Per hidden unit, the sites whose ``ln ||W_ai||`` has a z-score above ``tau`` (population std, THEORY §10)."""
    norms = np.linalg.norm(np.asarray(form.weights, dtype=np.float64), axis=-1)  # (m, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(norms)
        score = (log - log.mean(1, keepdims=True)) / log.std(1, keepdims=True)
    return [np.flatnonzero(np.nan_to_num(row, nan=-np.inf) > tau) for row in score]


def _fits_float(form: PottsForm, z: np.ndarray, sites_per_tuple: int) -> bool:
    """Whether ``e^x`` stays finite for every argument the integrals see (else the stable path is used)."""
    w = np.abs(np.asarray(form.weights, dtype=np.float64)).max(axis=(1, 2))  # (m,)
    sigma = np.sqrt(np.asarray(form.rest, dtype=np.float64).sum(1))
    reach = np.abs(np.asarray(form.hidden_bias, dtype=np.float64)) + sites_per_tuple * w + sigma * np.abs(z).max()
    return bool(reach.max() < (80.0 if jnp.dtype(form.weights.dtype) == jnp.float32 else 700.0))


_kernel = eqx.filter_jit(_gaussian_tensors)


def _blocks(total: int, per_item_bytes: int, budget: int = 2**28) -> int:
    """Tuples per block so that one block's working set stays near ``budget`` bytes (256 MiB)."""
    return int(max(1, min(total, budget // max(per_item_bytes, 1))))


def _large_n(form: PottsForm, rows: np.ndarray, method: str, nodes, tau: float, progress: bool) -> np.ndarray:
    """Zero-sum tensors ``(T, q**k)`` of the tuples ``rows (T, k)`` by the Gaussian or mixture approximation."""
    m, n, q = form.weights.shape
    t_count, k = rows.shape
    itemsize = jnp.dtype(form.weights.dtype).itemsize
    sigma_max = float(np.sqrt(np.asarray(form.rest, dtype=np.float64).sum(1).max()))
    z, w = quadrature(sigma_max, form.hidden, nodes)
    groups = []  # (hidden units, their extra sites (units, e)) per outlier count e >= 1
    if method == "mixture":
        found = outliers(form, tau)
        for e in sorted({len(o) for o in found} - {0}):
            units = np.asarray([a for a, o in enumerate(found) if len(o) == e])
            groups.append((units, np.stack([found[a] for a in units])))
    work = t_count * q**k * m + sum(t_count * q**k * len(u) * q ** x.shape[1] for u, x in groups)
    check_states(f"the {method} couplings of {t_count} tuples of order {k}", work * len(z))
    check_memory(f"the couplings of {t_count} tuples of order {k}", 2 * t_count * q**k * 8)
    stable = not _fits_float(form, z, k + max([x.shape[1] for _, x in groups], default=0))
    zj, wj = jnp.asarray(z, form.weights.dtype), jnp.asarray(w, form.weights.dtype)
    out = np.zeros((t_count, q**k))
    block = _blocks(t_count, 3 * q**k * m * itemsize * max([q ** x.shape[1] for _, x in groups], default=1))
    starts = range(0, t_count, block)
    for start in tqdm.tqdm(starts, desc=f"order-{k} couplings", unit="block", disable=not progress):
        chunk = rows[start : start + block]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], block - len(chunk), 0)])  # one compiled shape
        sites = jnp.asarray(padded)
        t = _kernel(form, sites, None, zj, wj, stable)
        for units, extra in groups:  # swap each outlier unit's single Gaussian for its mixture
            sub = PottsForm(form.weights[units], form.hidden_bias[units], form.visible_bias, form.hidden, form.spins)
            # outlier sites that are in the tuple are already exact: replace them by the dummy site n
            ex = np.where((extra[None, :, :, None] == padded[:, None, None, :]).any(-1), n, extra[None])
            t = t + _kernel(sub, sites, jnp.asarray(ex), zj, wj, stable) - _kernel(sub, sites, None, zj, wj, stable)
        out[start : start + len(chunk)] = np.asarray(t)[: len(chunk)]
    return out


def _exact(rbm: AbstractRBM, rows: np.ndarray) -> np.ndarray:
    """Zero-sum tensors ``(T, q**k)`` by enumeration (`couplings` of the model), the reference."""
    space = rbm.space
    return np.asarray(tensors_from_couplings(space, couplings(rbm), rows)).reshape(len(rows), -1)


def rbm_couplings(
    rbm: AbstractRBM, order: int, *, sites=None, method: str = "gauss", nodes: int | None = None, tau: float = 2.5,
    progress: bool = False,
) -> np.ndarray:
    """Effective couplings of a binary or Potts RBM at any size (THEORY §10): fields, pairs or higher orders.

    **Arguments:**

    - `rbm`: an `RBM` (spin or Bernoulli hidden units) or a `PottsRBM` (brought to the zero-sum
      gauge first).
    - `order`: 1 (all fields), 2 (all pairs), or any ``k`` with `sites`, a list of ``k``-tuples of sites.
    - `method`: ``"gauss"`` (the large-N approximation), ``"mixture"`` (outlier refinement: per
      hidden unit, the sites whose ``ln ||W_ai||`` has a z-score above `tau` are averaged
      exactly over their colours, the rest taken Gaussian), or ``"exact"`` (enumeration, within
      the budgets; the reference).
    - `nodes`: quadrature nodes per Gaussian integral (default: fitted to the model, see
      `quadrature`). `progress`: a progress bar over blocks of tuples.

    **Returns** (NumPy, float64): for spins, ``J_i`` ``(n,)``, ``J_ij`` ``(n, n)`` (symmetric, zero
    diagonal) or ``J_S`` ``(T,)`` per tuple; for colours, the zero-sum tensors ``h_i(μ)`` ``(n, q)``,
    ``J_ij(μ, ν)`` ``(n, n, q, q)`` (``J[j, i] = J[i, j]ᵀ``, zero diagonal blocks) or ``(T, q, ..., q)``.
    Fields include the (gauged) visible bias. Memory: the result and one block of tuples
    (about 256 MiB) at a time.
    """
    if not isinstance(rbm, AbstractRBM):
        raise TypeError(f"rbm_couplings takes an ebmflow.RBM or PottsRBM; got {type(rbm).__name__}")
    if method not in ("gauss", "mixture", "exact"):
        raise ValueError(f"method must be 'gauss', 'mixture' or 'exact'; got {method!r}")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau)):
        raise ValueError(f"tau must be a finite number (a z-score threshold); got {tau!r}")
    space = rbm.space
    n, q = space.n, space.q
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= order <= n:
        raise ValueError(f"order must be an int in 1..{n}; got {order!r}")
    if sites is None and order > 2:
        raise ValueError(f"order {order} needs sites, a list of {order}-tuples of sites")
    if sites is None:
        rows = np.arange(n)[:, None] if order == 1 else np.stack(np.triu_indices(n, 1), axis=1)
    else:
        rows = check_site_tuples(space, sites)
        if rows.shape[1] != order:
            raise ValueError(f"sites must be {order}-tuples for order {order}; got tuples of length {rows.shape[1]}")
    form = potts_form(rbm)
    tensors = _exact(rbm, rows) if method == "exact" else _large_n(form, rows, method, nodes, tau, progress)
    tensors = tensors.reshape((len(rows),) + (q,) * order)
    if method != "exact" and order == 1:
        tensors = tensors + np.asarray(form.visible_bias, dtype=np.float64)[rows[:, 0]]
    if form.spins:  # J_S is the tensor at colours 0 (every spin +1)
        values = tensors[(slice(None),) + (0,) * order]
        if sites is not None:
            return values
        if order == 1:
            return values
        out = np.zeros((n, n))
        out[rows[:, 0], rows[:, 1]] = out[rows[:, 1], rows[:, 0]] = values
        return out
    if sites is not None or order == 1:
        return tensors
    out = np.zeros((n, n, q, q))
    out[rows[:, 0], rows[:, 1]] = tensors
    out[rows[:, 1], rows[:, 0]] = np.swapaxes(tensors, 1, 2)
    return out
