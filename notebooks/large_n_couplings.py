# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Couplings beyond enumeration: how accurate is the large-N method?
#
# `ef.rbm_couplings` maps an RBM of any size onto its effective fields and pairs without
# summing over states (THEORY §10): for a pair (i, j) and hidden unit a, the input from every
# other site, `X_a = Σ_{l∉{i,j}} W_al(v_l)` with uniform colours, is replaced by a Gaussian of
# the same variance, and the coupling is a 1-D Gaussian integral (`method="gauss"`). When a few
# sites dominate a hidden unit, X_a is far from Gaussian; the **mixture refinement**
# (`method="mixture"`) takes the sites whose `ln ||W_ai||` has a z-score above 2.5 over the N
# sites exactly (averaged over their colours) and only the rest as Gaussian.
#
# Here we measure both against exact enumeration (`method="exact"`) where enumeration is
# still cheap:
#
# 1. binary RBMs, THEORY §10's benchmark: the relative L2 error of all pair couplings and
#    of the fields, for N = 10 … 18 (THEORY claims about 1.5%, 0.9%, 0.7% for pairs at N = 10,
#    14, 18 and 0.5% for fields);
# 2. Potts RBMs (q = 3, N = 9 … 12, up to `3^12 = 531441` states) with planted outlier sites,
#    where the mixture should help, and plain Gaussian RBMs, where it should change nothing.
#
# Run as a script (`python notebooks/large_n_couplings.py`, about 45 s on 2 cores, mostly
# compilation: every N is a new shape) or open with jupytext. Figures go to
# `notebooks/_out/` (or `$EBMFLOW_NOTEBOOK_OUT`).

# %%
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ebmflow as ef

OUT = Path(os.environ.get("EBMFLOW_NOTEBOOK_OUT") or Path(globals().get("__file__", "./x")).parent / "_out")
OUT.mkdir(parents=True, exist_ok=True)


def rel(approx, exact):
    """Relative L2 error ||approx - exact|| / ||exact|| over every entry."""
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))


# %% [markdown]
# ## 1. Binary RBMs: accuracy against N
#
# A standard {0,1}/{0,1} RBM with M = 50 hidden units and weights i.i.d. `N(0, 9/N)`, so the
# input to a hidden unit has variance O(1) at every N; biases either all zero or i.i.d.
# `N(0, 1)`. `RBM.from_bernoulli` maps it exactly onto spins (THEORY §7). Four random RBMs per
# size and bias setting; errors over all `N(N-1)/2` pairs (and all N fields) of each RBM.

# %%
def binary_rbm(n, seed, biases, m=50):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 3 / math.sqrt(n), (m, n))
    b, c = (rng.normal(size=n), rng.normal(size=m)) if biases else (np.zeros(n), np.zeros(m))
    return ef.RBM.from_bernoulli(w, b, c)


binary_sizes, seeds = (10, 12, 14, 16, 18), range(4)
pair_err = {}   # (n, biases) -> errors of the 4 RBMs
field_err = {}
for n in binary_sizes:
    iu = np.triu_indices(n, 1)
    for biases in (False, True):
        pairs, fields = [], []
        for seed in seeds:
            rbm = binary_rbm(n, 1000 * n + seed + 500 * biases, biases)
            pairs.append(rel(ef.rbm_couplings(rbm, 2)[iu], ef.rbm_couplings(rbm, 2, method="exact")[iu]))
            fields.append(rel(ef.rbm_couplings(rbm, 1), ef.rbm_couplings(rbm, 1, method="exact")))
        pair_err[n, biases], field_err[n, biases] = np.array(pairs), np.array(fields)

THEORY_PAIRS = {10: 1.5, 14: 0.9, 18: 0.7}  # percent, THEORY §10
print("binary RBM, M = 50, weights N(0, 9/N): relative L2 error against enumeration, in %")
print("    N  biases  pairs (4 RBMs)                 mean   fields (4 RBMs)               mean   THEORY pairs")
for (n, biases), errs in pair_err.items():
    f = field_err[n, biases]
    print(f"   {n:2d}  {'N(0,1)' if biases else 'zero':6s}  {np.round(100 * errs, 2)!s:30s} {100 * errs.mean():5.2f}   "
          f"{np.round(100 * f, 2)!s:28s} {100 * f.mean():5.2f}   {THEORY_PAIRS.get(n, '')}")
mean_pairs = np.array([np.mean([pair_err[n, b] for b in (False, True)]) for n in binary_sizes])
print("mean pair error over all 8 RBMs, by N:",
      ", ".join(f"{n}: {100 * e:.2f}%" for n, e in zip(binary_sizes, mean_pairs)))

# The claims, checked: pairs within 2% at N = 10 (mean over RBMs), falling with N; every field within 1%.
for biases in (False, True):
    assert pair_err[10, biases].mean() <= 0.02, pair_err[10, biases]
assert np.all(np.diff(mean_pairs) < 0), mean_pairs
assert mean_pairs[-1] < 0.8 * mean_pairs[0], mean_pairs
assert max(f.max() for f in field_err.values()) <= 0.01

# %% [markdown]
# ## 2. Potts RBMs: the mixture refinement
#
# **Planted outliers** (as in `tests/test_rbm_couplings.py`): 12 hidden units; every weight
# vector `W_ai(·)` has zero colour mean, a random direction and a norm uniform in
# [0.25, 0.35], except site 2's in the first 4 hidden units, multiplied by 6. Those 4 units
# are dominated by one site, so their input from the other sites is Gaussian but the site-2
# term is not small. **Plain RBMs**: 20 hidden units, weights i.i.d. `N(0, 9/(Nq))`, biases
# `N(0, 0.25)`. Three RBMs of each kind per N. We also count the outliers the criterion finds
# (z-score of `ln ||W_ai||` over the N sites, population std, above 2.5; the z-score of one
# site among N can reach at most `(N-1)/√N`, 2.67 at N = 9, so N ≥ 9 is needed).

# %%
q, tau = 3, 2.5


def planted_outliers(n, seed, m=12, factor=6.0, units=4):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(m, n, q))
    d -= d.mean(-1, keepdims=True)
    w = d / np.linalg.norm(d, axis=-1, keepdims=True) * rng.uniform(0.25, 0.35, (m, n, 1))
    w[:units, 2] *= factor
    return ef.PottsRBM(w, rng.normal(0, 0.3, (n, q)), rng.normal(0, 0.3, m))


def plain(n, seed, m=20):
    rng = np.random.default_rng(seed)
    return ef.PottsRBM(rng.normal(0, 3 / math.sqrt(n * q), (m, n, q)), rng.normal(0, 0.5, (n, q)),
                       rng.normal(0, 0.5, m))


def count_outliers(rbm):
    """(hidden unit, site) pairs the mixture treats exactly: z-score of ln ||W_ai|| over sites above tau."""
    w = np.asarray(rbm.zero_sum_gauge().weights)
    log_norm = np.log(np.linalg.norm(w, axis=-1))
    z = (log_norm - log_norm.mean(1, keepdims=True)) / log_norm.std(1, keepdims=True)
    return int((z > tau).sum())


potts_sizes = (9, 10, 11, 12)
potts = {kind: {"gauss": {}, "mixture": {}, "outliers": {}, "identical": {}} for kind in ("planted", "plain")}
for n in potts_sizes:
    iu = np.triu_indices(n, 1)
    for kind, make in (("planted", planted_outliers), ("plain", plain)):
        row = {key: [] for key in potts[kind]}
        for seed in range(3):
            rbm = make(n, 100 * n + seed)
            exact = ef.rbm_couplings(rbm, 2, method="exact")[iu]
            gauss = ef.rbm_couplings(rbm, 2)[iu]
            mixture = ef.rbm_couplings(rbm, 2, method="mixture")[iu]
            row["gauss"].append(rel(gauss, exact))
            row["mixture"].append(rel(mixture, exact))
            row["outliers"].append(count_outliers(rbm))
            row["identical"].append(bool(np.array_equal(gauss, mixture)))
        for key, values in row.items():
            potts[kind][key][n] = np.array(values)

print(f"Potts RBM, q = {q}: relative L2 error of all pairs against enumeration, in %")
print("    N  kind      gauss (3 RBMs)          mixture (3 RBMs)        outliers found  mixture == gauss")
for n in potts_sizes:
    for kind, res in potts.items():
        print(f"   {n:2d}  {kind:8s}  {np.round(100 * res['gauss'][n], 3)!s:22s}  "
              f"{np.round(100 * res['mixture'][n], 3)!s:22s}  {res['outliers'][n]!s:14s}  {res['identical'][n]}")
planted_g = np.concatenate(list(potts["planted"]["gauss"].values()))
planted_m = np.concatenate(list(potts["planted"]["mixture"].values()))
plain_g = np.concatenate(list(potts["plain"]["gauss"].values()))
plain_m = np.concatenate(list(potts["plain"]["mixture"].values()))
plain_found = np.concatenate(list(potts["plain"]["outliers"].values()))
plain_same = np.concatenate(list(potts["plain"]["identical"].values()))
print(f"planted: mean error gauss {100 * planted_g.mean():.3f}%, mixture {100 * planted_m.mean():.4f}% "
      f"(mixture/gauss ≤ {np.max(planted_m / planted_g):.3f} on every RBM)")
print(f"plain:   mean error gauss {100 * plain_g.mean():.3f}%, mixture {100 * plain_m.mean():.3f}%; "
      f"{int((plain_found == 0).sum())} of {plain_found.size} RBMs without outliers, all with identical couplings")

# The claims, checked on every RBM.
for n in potts_sizes:
    assert np.all(potts["planted"]["outliers"][n] == 4)  # the planted site in the 4 units, and nothing else
assert np.all(planted_m < 0.15 * planted_g) and planted_m.mean() < 0.1 * planted_g.mean()
assert np.all(plain_same == (plain_found == 0))  # no outliers found: bit-for-bit the Gaussian couplings
assert (plain_found == 0).sum() >= 0.75 * plain_found.size
assert np.all(plain_m <= plain_g)  # and where the criterion fires by chance, the error does not rise

# %% [markdown]
# ## Error against N
#
# Left: binary RBMs (dots: single RBMs, lines: means; crosses: THEORY's numbers). Middle:
# Potts RBMs with planted outliers. Right: plain Potts RBMs (a ring marks an RBM where the
# criterion found an outlier by chance).

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 5))
ax = axes[0]
for biases, color in ((False, "tab:blue"), (True, "tab:orange")):
    label = "biases N(0,1)" if biases else "zero biases"
    for what, marker, ls in (("pairs", "o", "-"), ("fields", "s", "--")):
        errs = pair_err if what == "pairs" else field_err
        values = np.array([100 * errs[n, biases] for n in binary_sizes])
        ax.plot(np.repeat(binary_sizes, len(seeds)), values.ravel(), marker, color=color, alpha=0.35, ms=4)
        ax.plot(binary_sizes, values.mean(1), marker + ls, color=color, lw=2, label=f"{what}, {label}")
ax.plot(list(THEORY_PAIRS), list(THEORY_PAIRS.values()), "kx", ms=10, mew=2, label="THEORY §10 (pairs)")
ax.set(xlabel="N (visible units)", ylabel="relative L2 error against enumeration (%)", xticks=binary_sizes,
       ylim=(0, None), title="binary RBM, M = 50, weights N(0, 9/N): gauss")
ax.legend(fontsize=8)
for ax, kind, title in ((axes[1], "planted", "Potts q = 3, planted outlier site (×6 in 4 of 12 units)"),
                        (axes[2], "plain", "Potts q = 3, plain Gaussian weights (20 units)")):
    res = potts[kind]
    for method, color, marker in (("gauss", "tab:red", "o"), ("mixture", "tab:green", "s")):
        values = np.array([100 * res[method][n] for n in potts_sizes])
        ax.plot(np.repeat(potts_sizes, 3), values.ravel(), marker, color=color, alpha=0.4, ms=5)
        ax.plot(potts_sizes, values.mean(1), marker + "-", color=color, lw=2, label=f"{method} (mean of 3)")
    if kind == "plain":
        for n in potts_sizes:
            fired = res["outliers"][n] > 0
            ax.plot(np.full(fired.sum(), n), 100 * res["mixture"][n][fired], "o", ms=12, mfc="none", mec="k",
                    label="outlier found by chance" if n == potts_sizes[1] else None)
    ax.set(yscale="log", xlabel="N (visible units)", ylabel="relative L2 error of all pairs (%)",
           xticks=potts_sizes, ylim=(0.01, 3), title=title)
    ax.legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
fig.suptitle("Large-N couplings against exact enumeration: accuracy by N, and the mixture refinement")
fig.tight_layout()
fig.savefig(OUT / "large_n_couplings.png", dpi=110)
print("figure:", OUT / "large_n_couplings.png")

# %% [markdown]
# ## What the numbers show
#
# - **Binary RBMs.** The Gaussian approximation's pair error, averaged over 8 RBMs, falls
#   steadily with N: about 1.4% at N = 10, 1.0% at N = 12, 0.95% at N = 14, 0.8% at N = 16 and
#   0.75% at N = 18, in line with THEORY §10's 1.5%, 0.9%, 0.7% (single RBMs scatter by about
#   ±0.5% at N = 10, one reaching 2.5%; the mean is the robust quantity). Fields are within
#   0.7% on every RBM, about 0.45% on average at N = 10 and 0.2% at N = 18, so "within
#   0.5%" holds on average, not for every draw.
# - **Planted outliers (q = 3).** The Gaussian approximation stays at 0.45–1.1% at every N:
#   the dominant site does not average out as N grows. The criterion finds the planted site
#   in all 4 units (and nothing else), and the mixture, which takes it exactly, brings the
#   error down to about 0.03%: 25-fold on average, at least 14-fold on every RBM.
# - **Plain Potts RBMs.** The Gaussian error is 0.5–1.2% and falls slowly with N. Usually no
#   site stands out, no outlier is found and the mixture returns exactly the Gaussian
#   couplings. Now and then (here 2 RBMs of 12; on 40 plain RBMs tried while writing this
#   notebook, 3) one site of one hidden unit crosses the z-score threshold by chance; the
#   mixture then takes that site exactly, and its error was lower, never higher, every time.
