"""Effective couplings of RBMs beyond enumeration: the large-N (central-limit) method of THEORY §10.

For a site tuple ``I`` and hidden unit ``a``, the other sites' input ``X_a = Σ_{l∉I} W_al(v_l)``
(colours uniform, weights in the zero-sum gauge) is taken Gaussian, ``X_a ≈ σ_a z`` with
``σ_a² = (1/q) Σ_{l∉I} Σ_μ W_al(μ)²``. Then

    T_I(μ_I) = Σ_a E_z[f(c_a + Σ_{k∈I} W_{a i_k}(μ_k) + σ_a z)],

a one-dimensional Gaussian integral per hidden unit and colour tuple, and the coupling tensor
is its zero-sum projection (each colour axis centred). Fields add the gauged visible bias.
Binary RBMs are the case ``q = 2`` with ``W_ai(v) = W_ai s(v)``, ``s(v) = 1 - 2v`` (already zero-sum).

The integral uses a uniform (trapezoid) rule in ``z`` on ``[-5, 5]`` with weights normalised to
the Gaussian (spectrally accurate for integrands analytic in a strip), with a step fitted to
the largest ``σ_a`` of the model (`quadrature`); the rule is symmetric, and each pair of nodes ``±z``
takes one ``log1p`` per colour tuple and hidden unit, in a form without cancellation (`_gaussian_tensors`).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jaxtyping import Array, Float

from .._budget import check_memory, check_states
from .._numerics import sigmoids, softplus
from ..energies._rbm import RBM, AbstractRBM
from ._couplings import couplings
from ._tensors import check_site_tuples, tensors_from_couplings

Z_RANGE = 5.0  # the rule covers z in [-5, 5]: the mass outside (6e-7) mostly shifts T by a constant
_STRIP = {"bernoulli": math.pi, "spin": math.pi / 2}  # half-width of the strip where f is analytic


def quadrature(sigma_max: float, hidden: str, nodes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``z_k`` and weights of the normalised trapezoid rule for ``E_z[g(z)]``, ``z ~ N(0, 1)``.

    Uniform nodes on ``[-5, 5]``, weights ``∝ h φ(z_k)`` (halved at the ends) summing to 1: the
    papers' rule (21 nodes, ``h = 0.5``) with its weights normalised. Its error for
    ``f(m + σ z)`` decays like ``exp(-2π d / (σ h))`` (``d`` the half-width of the strip where
    ``f`` is analytic: π for softplus, π/2 for ``ln 2cosh``), so the default step is
    ``h = min(0.5, 1.2 d / (π σ_max))``: 21 nodes up to ``σ_max = 2.4`` (softplus), more beyond,
    where the papers' fixed rule loses accuracy (its error at ``σ = 6`` is 7e-4).
    """
    if nodes is None:
        h_max = min(0.5, 1.2 * _STRIP[hidden] / math.pi / max(sigma_max, 1e-12))
        nodes = math.ceil(2 * Z_RANGE / h_max) + 1
        nodes += 1 - nodes % 2
    if isinstance(nodes, bool) or not isinstance(nodes, (int, np.integer)) or nodes < 3:
        raise ValueError(f"nodes must be an int >= 3 (quadrature nodes per Gaussian integral); got {nodes!r}")
    z = np.linspace(-Z_RANGE, Z_RANGE, int(nodes))
    w = np.exp(-(z**2) / 2)
    w[[0, -1]] /= 2
    return z, w / w.sum()


def fold(z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric rule as its nodes ``z >= 0`` (each standing for ``±z``; the node 0 with half its weight)."""
    half = z >= 0
    return z[half], np.where(z[half] == 0, w[half] / 2, w[half])


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


def _project(t: Array, k: int) -> Array:
    """Zero-sum projection of the last ``k`` colour axes: ``Σ_{K⊆I} (-1)^{|K|} ⟨T⟩_K`` (centre each axis)."""
    for axis in range(t.ndim - k, t.ndim):
        t = t - t.mean(axis, keepdims=True)
    return t


def _on_axis(x: Array, j: int, k: int) -> Array:
    """``(B, q, C, m)`` per-site factors placed on colour axis ``j`` of ``(B, q, ..., q, C, m)``."""
    b, q = x.shape[:2]
    return x.reshape((b,) + (1,) * j + (q,) + (1,) * (k - 1 - j) + x.shape[2:])


def _gaussian_tensors(form: PottsForm, sites: Array, extra: Array | None, z: Array, w: Array, direct: bool) -> Array:
    """``Σ_a E_z f(c_a + Σ_{k∈I} W + [extra sites' colours] + σ_a z)``, zero-sum projected: ``(B, q^k)``.

    ``(z, w)`` is the half of a symmetric rule (`fold`): each node ``z >= 0`` stands for ``±z``.
    ``extra (B, m, e)`` lists, per tuple and hidden unit, sites averaged exactly over their
    colours (the outliers of the mixture refinement; site ``n`` is a dummy with zero weights).

    The elementwise work avoids cancellation. Spin units use ``E ln2cosh(x + σz) =
    E softplus(2x + 2σz) - x``. With ``p = sigmoid(x₀ ± σz)`` at the tuple's colours 0 and
    ``e_k = expm1(W_k(μ_k) - W_k(0))``, ``1 + e^{x±σz} = (1 + e^{x₀±σz})(1 + p(Π_k(1 + e_k) - 1))``;
    the first factor does not depend on the colours, and the projection removes every term that
    depends on fewer than ``k`` of them. So pairs sum ``log1p(p(1-p) u₁u₂)``, ``u = e/(1 + pe)``
    (the exact mixed difference: small terms, accurate in float32), and other orders
    ``log1p(v₁ (Π_{k≥2}(1 + e_k) - 1))``, ``v₁ = p(1 + e₁)/(1 + pe₁)`` (``v₁ = p`` for fields),
    one ``log1p`` per colour tuple, hidden unit and pair of nodes ``±z``. Their rounding grows like
    ``e^{|ΔW|}`` (``1 + …`` near 0 for strongly coupled colours), so `direct` models (`_strong`)
    take ``softplus(x ± σz) - softplus(x₀ ± σz)`` as it stands (two logarithms per element).
    """
    k = sites.shape[1]
    scale = 2.0 if form.hidden == "spin" else 1.0
    weights, dtype = scale * form.weights, form.weights.dtype
    rest = form.rest
    variance = rest.sum(1)[None] - rest[:, sites].sum(-1).T  # (B, m)
    corner = scale * form.hidden_bias + sum(weights[:, sites[:, j], 0].T for j in range(k))  # (B, m)
    corner = corner[:, None]  # (B, C, m): C colour combinations of the extra sites (1 without)
    if extra is not None:
        padded = jnp.concatenate([weights, jnp.zeros_like(weights[:, :1])], axis=1)
        rest_padded = jnp.concatenate([rest, jnp.zeros_like(rest[:, :1])], axis=1)
        units = jnp.arange(rest.shape[0])
        variance = variance - rest_padded[units[None, :, None], extra].sum(-1)
        ex = padded[units[None, :, None], extra]  # (B, m, e, q)
        combos = jnp.zeros((*ex.shape[:2], 1), dtype)
        for j in range(ex.shape[2]):  # every colour combination of the extra sites: (B, m, q**e)
            combos = (combos[..., :, None] + ex[:, :, j, None, :]).reshape(*ex.shape[:2], -1)
        corner = corner + jnp.swapaxes(combos, 1, 2)
    sigma = scale * jnp.sqrt(jnp.maximum(variance, 0))[:, None]  # (B, 1, m)
    delta = [jnp.moveaxis(weights[:, sites[:, j]] - weights[:, sites[:, j], :1], 0, -1)[:, :, None] for j in range(k)]
    e = [jnp.expm1(d) for d in delta]  # (B, q, 1, m) per site
    pair = k == 2 and not direct
    if pair:  # every term holds e₁e₂, zero at colour 0 of either site: those rows are left out
        e = [x[:, 1:] for x in e]
    shift = sum(_on_axis(d, j, k) for j, d in enumerate(delta))  # Σ_k ΔW_k over the colour tuples
    if k != 2:  # Π_{k≥2}(1 + e_k) - 1 over the colour tuples (e₁ for fields)
        rest_e = _on_axis(e[min(1, k - 1)], min(1, k - 1), k)
        for j in range(2, k):
            rest_e = rest_e + _on_axis(e[j], j, k) * (1 + rest_e)

    def factors(i):
        """The small per-node factors (no colour product) of the nodes ``±z_i``."""
        out = []
        for sign in (1.0, -1.0):
            x = corner + sign * sigma * z[i]  # (B, C, m)
            if direct:
                out += [_on_axis(x[:, None], 0, k), _on_axis(softplus(x)[:, None], 0, k)]
                continue
            p, pbar = (y[:, None] for y in sigmoids(x))
            if pair:
                out += [_on_axis(p * pbar * e[0] / (pbar + p * (1 + e[0])), 0, 2),
                        _on_axis(e[1] / (pbar + p * (1 + e[1])), 1, 2)]
            else:
                out.append(_on_axis(p if k == 1 else p * (1 + e[0]) / (pbar + p * (1 + e[0])), 0, k))
        if not (pair or direct):  # log1p(v₊E) + log1p(v₋E) = log1p(E (v₊ + v₋ + v₊v₋ E))
            out = [out[0] + out[1], out[0] * out[1]]
        return out

    def node(carry, i):
        # The next node's factors travel in the loop carry, so XLA keeps them as small arrays instead of
        # fusing them into the colour-tuple pass (and recomputing sigmoids and divisions per element).
        acc, f = carry
        if direct:
            value = softplus(f[0] + shift) - f[1] + softplus(f[2] + shift) - f[3]
        elif pair:
            plus, minus = f[0] * f[1], f[2] * f[3]
            value = jnp.log1p(plus + minus * (1 + plus))
        else:
            value = jnp.log1p(rest_e * (f[0] + f[1] * rest_e))
        acc = acc + w[i] * value.sum(-1).mean(-1)  # over hidden units, then the extra sites' colours
        return (acc, factors(jnp.minimum(i + 1, z.shape[0] - 1))), None

    acc = jnp.zeros((sites.shape[0],) + (e[0].shape[1],) * k, dtype)
    (t, _), _ = jax.lax.scan(node, (acc, factors(0)), jnp.arange(z.shape[0]))
    if pair:
        t = jnp.pad(t, ((0, 0), (1, 0), (1, 0)))
    if k == 1 and form.hidden == "spin":  # the "- x" of ln2cosh, linear in the field's colour
        t = t - delta[0][:, :, 0].sum(-1) / scale
    t = _project(t, k)
    return t.reshape(t.shape[0], -1)


def outliers(form: PottsForm, tau: float) -> list[np.ndarray]:
    """Per hidden unit, the sites whose ``ln ||W_ai||`` has a z-score above ``tau`` (population std, THEORY §10)."""
    norms = np.linalg.norm(np.asarray(form.weights, dtype=np.float64), axis=-1)  # (m, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(norms)
        score = (log - log.mean(1, keepdims=True)) / log.std(1, keepdims=True)
    return [np.flatnonzero(np.nan_to_num(row, nan=-np.inf) > tau) for row in score]


def _strong(form: PottsForm, sites_per_tuple: int) -> bool:
    """Whether the weights are too strong for the factored form of `_gaussian_tensors` in their dtype.

    Its rounding error is amplified by at most ``e^{kΔ}``, ``Δ = 2 max |W|`` (``4 max |W|`` for spin
    units) the largest change of a hidden input with one colour: the factored form is kept while
    that stays below 400 (float32) or 1e10 (float64).
    """
    scale = 2.0 if form.hidden == "spin" else 1.0
    reach = scale * 2 * sites_per_tuple * float(np.abs(np.asarray(form.weights, dtype=np.float64)).max())
    return reach > (6.0 if jnp.dtype(form.weights.dtype) == jnp.float32 else 23.0)


_kernel = eqx.filter_jit(_gaussian_tensors)


def _blocks(total: int, per_item_bytes: int, budget: int = 2**22) -> int:
    """Tuples per block so that one block's per-node factors stay near ``budget`` bytes (4 MiB: in cache)."""
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
    check_states(f"the {method} couplings of {t_count} tuples of order {k}", work, len(z), "Gaussian integrals")
    check_memory(f"the couplings of {t_count} tuples of order {k}", 2 * t_count * q**k * 8)
    direct = _strong(form, k + max([x.shape[1] for _, x in groups], default=0))
    zj, wj = (jnp.asarray(a, form.weights.dtype) for a in fold(z, w))
    out = np.zeros((t_count, q**k))
    block = _blocks(t_count, (2 * k + 2) * q * m * itemsize * max([q ** x.shape[1] for _, x in groups], default=1))
    starts = range(0, t_count, block)
    for start in tqdm.tqdm(starts, desc=f"order-{k} couplings", unit="block", disable=not progress):
        chunk = rows[start : start + block]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], block - len(chunk), 0)])  # one compiled shape
        sites = jnp.asarray(padded)
        t = _kernel(form, sites, None, zj, wj, direct)
        for units, extra in groups:  # swap each outlier unit's single Gaussian for its mixture
            sub = PottsForm(form.weights[units], form.hidden_bias[units], form.visible_bias, form.hidden, form.spins)
            # outlier sites that are in the tuple are already exact: replace them by the dummy site n
            ex = np.where((extra[None, :, :, None] == padded[:, None, None, :]).any(-1), n, extra[None])
            t = t + _kernel(sub, sites, jnp.asarray(ex), zj, wj, direct) - _kernel(sub, sites, None, zj, wj, direct)
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
    Fields include the (gauged) visible bias. Memory: the result and one block of tuples (its
    per-node factors, about 4 MiB) at a time.
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
