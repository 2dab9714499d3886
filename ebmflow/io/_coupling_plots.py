"""Figures of effective couplings: the pair map, histograms by order, and contact predictions."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ._results import write_figure


def plot_pair_map(scores, ax, title: str, contacts=None, predicted=None):
    """A symmetric ``(n, n)`` map; with a contact map, true contacts (grey) under the top predictions (red)."""
    n = scores.shape[0]
    if contacts is None:
        image = ax.imshow(scores, cmap="viridis", origin="lower")
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    else:
        i, j = np.nonzero(np.triu(contacts, 1))
        ax.scatter(j, i, s=8, color="0.75", marker="s", label=f"contacts ({len(i)})")
        ax.scatter(i, j, s=8, color="0.75", marker="s")
        if predicted is not None:
            hit = contacts[predicted[:, 0], predicted[:, 1]]
            ax.scatter(predicted[hit, 1], predicted[hit, 0], s=10, color="C3", label=f"top {len(predicted)}: contact")
            ax.scatter(predicted[~hit, 1], predicted[~hit, 0], s=10, color="C0", marker="x", label="top: no contact")
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(-0.5, n - 0.5)
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel("site j")
    ax.set_ylabel("site i")
    ax.set_title(title)


def plot_histograms(orders: dict, ax):
    """Histograms of the coupling entries of each order (log counts)."""
    for k, values in sorted(orders.items()):
        values = np.asarray(values).ravel()
        ax.hist(values, bins=60, histtype="step", lw=1.5, label=f"order {k} ({values.size} entries)")
    ax.set_yscale("log")
    ax.set_xlabel("coupling value (zero-sum gauge)")
    ax.set_ylabel("entries")
    ax.set_title("Effective couplings by order")
    ax.legend(fontsize=8)


def plot_ppv(values, ax, n: int):
    k = np.arange(1, len(values) + 1)
    ax.plot(k, values, color="C3", lw=1.8)
    for frac, style in ((1, ":"), (0.5, "--")):
        if n * frac <= len(values):
            ax.axvline(n * frac, color="gray", ls=style, lw=1, label=f"k = {'L' if frac == 1 else 'L/2'}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("number of top-ranked pairs k")
    ax.set_ylabel("positive predictive value PPV(k)")
    ax.set_title("Contact prediction")
    ax.legend(fontsize=8)


def coupling_figures(result: dict, out: Path, formats=("png",)) -> list[Path]:
    """Every figure the couplings ``result`` supports (arrays as written by `ebmflow couplings`)."""
    figures = []
    if "scores_apc" in result:
        fig = Figure(figsize=(6, 5))
        plot_pair_map(result["scores_apc"], fig.subplots(), "Pair coupling scores (Frobenius, APC)")
        figures.append(("couplings", fig))
    elif "pairs" in result:
        fig = Figure(figsize=(6, 5))
        plot_pair_map(result["pairs"], fig.subplots(), "Pair couplings J_ij")
        figures.append(("couplings", fig))
    orders = {k: result[name] for k, name in ((1, "fields"), (2, "pairs"), (3, "triplets")) if name in result}
    if orders:
        fig = Figure(figsize=(6, 4.5))
        plot_histograms(orders, fig.subplots())
        figures.append(("histograms", fig))
    if "ppv" in result:
        fig = Figure(figsize=(11, 4.5))
        left, right = fig.subplots(1, 2)
        n = result["contacts"].shape[0]
        plot_ppv(result["ppv"], left, n)
        plot_pair_map(result["scores_apc"], right, "Top L predictions over the contact map", result["contacts"],
                      result["ranked_pairs"][:n])
        figures.append(("contacts", fig))
    paths = []
    for name, fig in figures:
        fig.tight_layout()
        for fmt in formats:
            paths.append(write_figure(fig, out / f"{name}.{fmt}"))
    return paths
