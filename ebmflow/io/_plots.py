"""Figures from a results file alone.

Matplotlib's object-oriented API (`matplotlib.figure.Figure`, no pyplot): no display
is needed and the user's backend (a notebook's inline one, say) is left alone.
"""

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._results import OutputError, Results, write_figure


def _orders(n: int, k_max: int = 6):
    return list(range(1, min(n, k_max) + 1))


# One qualitative colour and marker per order 1..6, distinguishable in print and for colour-blind readers.
_ORDER_STYLE = [("#0072B2", "o"), ("#E69F00", "s"), ("#009E73", "^"), ("#CC79A7", "D"), ("#D55E00", "v"),
                ("#000000", "x")]


def _variables(results: Results) -> str:
    """``"n spins"`` or ``"n sites, q colours"``, from the stored configuration."""
    model = results.metadata.get("config", {}).get("model", {})
    n, q = model.get("n"), model.get("q")
    if n is None:
        return ""
    return f" ({n} spins)" if q is None else f" ({n} sites, q = {q} colours)"


def _finite(x) -> np.ndarray:
    """``x`` as floats with ±inf made NaN: matplotlib leaves NaN out of lines and of the axis limits.

    Failed runs (diverging training, a solver that gave up) store NaN or overflowing values.
    """
    x = np.asarray(x, dtype=float)
    return np.where(np.isfinite(x), x, np.nan)


def _log_scale(ax, values, axis: str = "y") -> None:
    """A log axis when ``values`` hold a positive finite number; else a linear one, saying why.

    Matplotlib refuses a log axis over data that are all <= 0 (every eigenvalue 0 at a
    degenerate endpoint, say) and warns over no data at all (every run failed).
    """
    values = np.asarray(values, dtype=float)
    if np.any(np.isfinite(values) & (values > 0)):
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    else:
        ax.text(0.5, 0.5, "no positive finite values\n(failed or degenerate runs)", transform=ax.transAxes,
                ha="center", va="center", color="gray")


def _time_axis(ax, ts):
    ax.set_xscale("log")
    ax.set_xlim(ts[ts > 0].min(), ts.max())
    ax.set_xlabel("training time t")


def plot_kl(results: Results, ax):
    ts, kl = results["ts"], _finite(results["kl"])
    for i, row in enumerate(kl):
        label = "each run" if i == 0 and len(kl) > 1 else None
        ax.plot(ts[1:], row[1:], color="C0", alpha=0.3 if len(kl) > 1 else 1, lw=1, label=label)
    if len(kl) > 1:
        with warnings.catch_warnings():  # the median is NaN where every run failed
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(kl[:, 1:], axis=0)
        ax.plot(ts[1:], median, color="C0", lw=2.5, label=f"median of {len(kl)} runs")
        ax.legend()
    _log_scale(ax, kl[:, 1:])
    _time_axis(ax, ts)
    ax.set_ylabel("KL(p_D || p_θ)  [nats]")
    ax.set_title("Exact KL along the learning trajectory")


def significant_orders(norms, dtype) -> list[int]:
    """The orders ``k >= 1`` whose norm ``norms[k]`` exceeds ``√eps`` of ``dtype`` times the largest: not rounding."""
    norms = np.asarray(norms)
    return [k for k in range(1, norms.size) if norms[k] > np.sqrt(np.finfo(dtype).eps) * norms.max()]


def plot_hierarchy(results: Results, axes):
    ts, n = results["ts"], results["target_coupling_norms"].shape[0] - 1
    with warnings.catch_warnings():  # Δ_k is NaN (undefined) where the initial mismatch of order k is zero
        warnings.simplefilter("ignore", RuntimeWarning)
        delta = np.nanmedian(_finite(results["delta"]), axis=0)
        norms = np.nanmedian(_finite(results["coupling_norms"]), axis=0)
    alpha = results.metadata.get("config", {}).get("analysis", {}).get("alpha")
    target_norms = results["target_coupling_norms"]
    significant = significant_orders(target_norms, results.metadata.get("dtype", "float64"))
    for k, (c, marker) in zip(_orders(n), _ORDER_STYLE):
        style = dict(color=c, lw=1.8, marker=marker, markersize=4, markevery=max(1, len(ts) // 12), label=f"order {k}")
        if np.isfinite(delta[1:, k]).any():  # no legend entry for an order whose Δ_k is undefined
            axes[0].plot(ts[1:], delta[1:, k], **style)
        axes[1].plot(ts[1:], norms[1:, k], **style)
        if k in significant:
            axes[1].axhline(target_norms[k], color=c, ls="--", lw=1.2, alpha=0.8)
    axes[1].plot([], [], color="gray", ls="--", lw=1.2, label="target ||J*_k||")
    if alpha:
        axes[0].axhline(alpha, color="gray", ls=":", lw=1, label=f"α = {alpha}")
    for ax, values in zip(axes, (delta[1:, 1:], norms[1:, 1:])):
        _time_axis(ax, ts)
        _log_scale(ax, values)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("moment mismatch Δ_k(t)  (relative to t = 0)")
    axes[0].set_title(f"Moment mismatch by order{_variables(results)}")  # a description, not a claim
    axes[1].set_ylabel("coupling norm ||J_k||  (dashed: target ||J*_k||)")
    axes[1].set_title(f"Effective couplings by order{_variables(results)}")


def plot_spectrum(results: Results, ax, member: int = 0):
    lam = _finite(results["eigenvalues"][member])
    stable, neutral, unstable = (results[k][member] for k in ("n_stable", "n_neutral", "n_unstable"))
    eig_rtol = (results.metadata.get("stability") or [{}])[member] or {}
    tol = (eig_rtol.get("thresholds") or {}).get("eig_rtol", 1e-9) * np.nanmax(np.abs(lam))
    idx = np.arange(lam.size)
    groups = [(lam > tol, "C2", "o", f"stable: λ > t ({stable})"),
              (np.abs(lam) <= tol, "C7", "s", f"neutral: |λ| ≤ t ({neutral})"),
              (lam < -tol, "C3", "v", f"unstable: λ < -t ({unstable})")]
    for mask, color, marker, label in groups:
        ax.scatter(idx[mask], np.abs(lam[mask]), s=12, color=color, marker=marker, label=label)
    if tol > 0:  # t = 0 when every eigenvalue is 0 (a degenerate endpoint): no line on a log axis
        ax.axhline(tol, color="gray", ls=":", lw=1, label=f"t = {tol:.1e} (relative tolerance × max|λ|)")
    _log_scale(ax, np.abs(lam))
    ax.set_xlabel("eigenvalue index (ascending λ)")
    ax.set_ylabel("|λ|, eigenvalues of the Hessian ∇²L")
    kind = (results.metadata.get("kinds") or [None])[member]
    run = f" of run {member}" if results["eigenvalues"].shape[0] > 1 else ""
    ax.set_title(f"Hessian spectrum at the endpoint{run}: {kind}")
    ax.legend(loc="center right", fontsize=8)  # eigenvalues rise from left to right: that region is free


_KL_FLOOR = 1e-16  # a final KL below this is float64 rounding of an exact fit


def plot_batch(results: Results, axes):
    kl = results["kl"][:, -1]
    ok = np.isfinite(kl)
    exact = ok & (kl <= _KL_FLOOR)  # exact fits: KL is 0 up to rounding, and may come out <= 0
    kl = np.where(exact, _KL_FLOOR, kl)
    if len(kl) < 10:  # too few runs for a histogram: one point per run
        axes[0].scatter(np.flatnonzero(ok), kl[ok], color="C0", s=30)
        _log_scale(axes[0], kl[ok])
        axes[0].set_xlabel("run (initialisation index)")
        axes[0].set_ylabel("final KL  [nats]")
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        axes[0].hist(np.log10(kl[ok]), bins=max(5, int(np.sqrt(ok.sum()))), color="C0")
        axes[0].set_xlabel("log10 final KL  [nats]")
        axes[0].set_ylabel("runs")
        axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    floor = f"\n{exact.sum()} at ≤ {_KL_FLOOR:g} (rounding) drawn at {_KL_FLOOR:g}" if exact.any() else ""
    failed = f"; {(~ok).sum()} not finite (failed), left out" if not ok.all() else ""
    axes[0].set_title(f"Final KL over {len(kl)} initialisations{failed}{floor}")
    taus = results["learning_times"]
    n = taus.shape[1] - 1
    data = [taus[:, k][np.isfinite(taus[:, k])] for k in _orders(n)]
    axes[1].boxplot([d if d.size else [np.nan] for d in data], tick_labels=[str(k) for k in _orders(n)])
    for i, d in enumerate(data, start=1):
        axes[1].scatter(np.full(d.size, i), d, color="C0", s=10, alpha=0.6, zorder=3)
        if d.size < len(taus):
            axes[1].annotate(f"{len(taus) - d.size}/{len(taus)}\nnot reached", (i, 0.02),
                             xycoords=("data", "axes fraction"), ha="center", fontsize=7, color="gray")
    _log_scale(axes[1], np.concatenate(data))
    axes[1].set_xlabel("order k")
    alpha = results.metadata.get("config", {}).get("analysis", {}).get("alpha")
    axes[1].set_ylabel(f"learning time τ_k(α = {alpha})")
    axes[1].set_title("Learning time by order")


def plot_all(results: Results, out: str | Path, formats=("png",)) -> list[Path]:
    """Write every figure the results support into ``out``; returns the paths.

    Failed runs (NaN or overflowing values) are left out of the axes, not fatal. The spectrum is
    that of the first analysed run. A file that cannot be written raises `OutputError`.
    """
    if results["kl"].shape[0] == 0:
        status = results.metadata.get("status")
        raise ValueError(f"the results hold no finished run (status {status!r}): nothing to plot")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(err.errno, err.strerror, str(out)) from None
    figures = []
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    plot_kl(results, ax)
    figures.append(("kl", fig))
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    plot_hierarchy(results, axes)
    figures.append(("hierarchy", fig))
    analysed = np.flatnonzero(np.isfinite(results["eigenvalues"]).any(axis=1)) if "eigenvalues" in results else []
    if len(analysed):
        fig = Figure(figsize=(6, 4.5))
        ax = fig.subplots()
        plot_spectrum(results, ax, member=int(analysed[0]))
        figures.append(("spectrum", fig))
    if results["kl"].shape[0] > 1:
        fig = Figure(figsize=(12, 4.5))
        axes = fig.subplots(1, 2)
        plot_batch(results, axes)
        figures.append(("batch", fig))
    paths = []
    for name, fig in figures:
        fig.tight_layout()
        for fmt in formats:
            paths.append(write_figure(fig, out / f"{name}.{fmt}"))
    return paths
