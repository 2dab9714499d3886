# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Are low orders learned first for colours (q = 3, 4)?
#
# For spins, an RBM with small weights learns its effective couplings order by order
# (THEORY §6, `notebooks/hierarchy.py`): the order-k couplings are `O(ε^k)` in the weight
# scale ε, so they barely move until the weights have grown. The same expansion holds for a
# Potts RBM, `-E(v) = Σ_i b_i(v_i) + Σ_a softplus(c_a + Σ_i W_ai(v_i))` (THEORY §9): its
# order-k zero-sum couplings are products of k weight vectors. Does the hierarchy survive
# q = 3 colours, where each order holds `C(n, k)·2^k` couplings instead of `C(n, k)`, and q = 4?
#
# We follow the exact gradient flow over all `3^5 = 243` states of
#
# - a Potts RBM, n = 5 sites, q = 3 colours, 24 Bernoulli hidden units, weights of std `1e-2`,
#   zero biases;
# - a `CouplingModel`, every one of the `3^5 - 1 = 242` couplings a free parameter (`K = I`:
#   a convex problem, no hierarchy expected, THEORY §6 last line), couplings of std `1e-2`;
#
# on random Potts teachers with couplings of orders 1–4 (three teachers and three
# initialisations), and on a Blume–Capel chain, which has pairs and triplets only. Per order
# k we record the relative moment mismatch `Δ_k(t)` (order-k zero-sum coefficients of
# `p_θ - p_D`, relative to t = 0) and the learning time `τ_k`: the first t with `Δ_k ≤ 0.1`.
#
# Run as a script (`python notebooks/potts_hierarchy.py`, about 45 s on 2 cores, mostly
# compilation) or open with jupytext. Figures go to `notebooks/_out/` (or `$EBMFLOW_NOTEBOOK_OUT`).

# %%
import os
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

import ebmflow as ef

OUT = Path(os.environ.get("EBMFLOW_NOTEBOOK_OUT") or Path(globals().get("__file__", "./x")).parent / "_out")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Teachers and students
#
# The random teachers draw every zero-sum coupling of orders 1–4 i.i.d. with standard
# deviations 0.3, 0.25, 0.2, 0.15 (order 5 is absent). The Blume–Capel chain is
# `-βH = β Σ_i [J2 σ_i σ_{i+1} + J3 σ_i σ_{i+1} σ_{i+2}]`, periodic, with β = 0.5, J2 = 1,
# J3 = 0.5: no fields and no couplings beyond order 3, though its moments of every order
# differ from the uniform distribution's. Both students train on the same save-time grid
# (50 points, log-spaced from `1e-3` to `1e4`), rtol `1e-4` as in `hierarchy.py`. The compiled
# flows are reused: every teacher and initialisation has the same shapes.

# %%
n, q, m, eps, alpha = 5, 3, 24, 1e-2, 0.1
space = ef.Potts(n, q)
ts = np.r_[0, np.logspace(-3, 4, 50)]
options = dict(ts=ts, rtol=1e-4, atol=1e-8)

teachers = {f"random Potts, seed {s}": ef.targets.random_potts(jax.random.key(s), n, q,
                                                               {1: 0.3, 2: 0.25, 3: 0.2, 4: 0.15})
            for s in range(3)}
teachers["Blume-Capel β=0.5, J2=1, J3=0.5"] = ef.targets.blume_capel(n, 0.5, 1.0, 0.5)

runs = {}
for i, (name, teacher) in enumerate(teachers.items()):
    target = ef.Target.from_model(teacher)
    rbm = ef.PottsRBM.init(jax.random.key(100 + i), n, q, m, scale=eps)
    full = ef.CouplingModel.init(jax.random.key(100 + i), space, scale=eps)
    runs[name] = {"RBM": ef.flow(rbm, target, t1=ts[-1], **options),
                  "CouplingModel": ef.flow(full, target, t1=ts[-1], **options)}
    norms = np.asarray(runs[name]["RBM"].target_coupling_norms)[1:]
    print(f"{name}: teacher ||J*_k||, k = 1..5: {np.round(norms, 3)}")
    for student, sol in runs[name].items():
        print(f"    {student:13s} {sol.message}; final KL = {float(sol.kl[-1]):.1e} nats")

# %% [markdown]
# ## Learning times by order

# %%
taus = {name: {student: np.asarray(sol.learning_times(alpha)) for student, sol in pair.items()}
        for name, pair in runs.items()}
print(f"learning times τ_k(α = {alpha})")
print(f"{'teacher':32s} {'student':13s}" + "".join(f"{f'τ_{k}':>9s}" for k in range(1, n + 1))
      + "   τ_2/τ_1  decades(τ_1..τ_4)")
for name, pair in taus.items():
    for student, tau in pair.items():
        spread = np.ptp(np.log10(tau[1:5]))
        print(f"{name:32s} {student:13s}" + "".join(f"{t:9.3g}" for t in tau[1:])
              + f"   {tau[2] / tau[1]:7.3g}  {spread:8.2f}")

# The claims, checked on every run.
for name, pair in taus.items():
    rbm_tau, full_tau = pair["RBM"], pair["CouplingModel"]
    assert np.all(np.isfinite(rbm_tau[1:])) and np.all(np.isfinite(full_tau[1:]))  # every order is learned
    # The RBM: fields first, pairs a decade or more later, then orders 3 and 4.
    assert rbm_tau[1] < rbm_tau[2] < min(rbm_tau[3], rbm_tau[4]), (name, rbm_tau)
    assert 50 < rbm_tau[2] / rbm_tau[1] < 800 and min(rbm_tau[3], rbm_tau[4]) > 100 * rbm_tau[1], (name, rbm_tau)
    # The full-coupling model: every order within a factor of 3.5, all of them learned
    # before the RBM has learned its pairs.
    assert np.ptp(np.log10(full_tau[1:5])) < np.log10(3.5), (name, full_tau)
    assert full_tau[1:].max() < rbm_tau[2], (name, full_tau, rbm_tau)
    if name.startswith("random"):  # strictly order by order on the random teachers
        assert rbm_tau[1] < rbm_tau[2] < rbm_tau[3] < rbm_tau[4], (name, rbm_tau)
i10 = int(np.searchsorted(ts, 10.0))
print(f"RBM Δ_k at t = {ts[i10]:.3g} (the plateau), k = 1..5:")
for name, pair in runs.items():
    plateau = np.asarray(pair["RBM"].delta)[i10]
    print(f"    {name:32s} {np.round(plateau[1:], 3)}")
    assert plateau[1] < 0.05 and plateau[2:5].min() > 0.25  # fields learned, orders 2-4 not yet
bc = taus["Blume-Capel β=0.5, J2=1, J3=0.5"]["RBM"]
assert bc[3] > bc[4]  # on this Blume-Capel chain the odd order 3 lags order 4
final_kl = {name: {student: float(sol.kl[-1]) for student, sol in pair.items()} for name, pair in runs.items()}
for name, kl in final_kl.items():  # the fits at t = 1e4 (last paragraph below)
    assert kl["CouplingModel"] < 1e-5 and (1e-3 < kl["RBM"] < 2e-2 if name.startswith("random") else kl["RBM"] < 1e-3)

# %% [markdown]
# ## The order among orders ≥ 2 is not universal: the student's width
#
# The teacher of `examples/potts_blume_capel.toml` (β = 0.6, J2 = 1, J3 = 0.5), learned by Potts
# RBMs with 6 (as in the example) and 24 hidden units from the same kind of start.

# %%
bc_target = ef.Target.from_model(ef.targets.blume_capel(n, 0.6, 1.0, 0.5))
width = {}
for hidden in (6, 24):
    sol = ef.flow(ef.PottsRBM.init(jax.random.key(104), n, q, hidden, scale=eps), bc_target, t1=ts[-1], **options)
    width[hidden] = (sol, np.asarray(sol.learning_times(alpha)), np.asarray(sol.delta))
i14, i52 = (int(np.searchsorted(ts, t)) for t in (13.0, 50.0))
for hidden, (sol, tau, delta) in width.items():
    print(f"{hidden:2d} hidden units: τ_1..4 = {np.round(tau[1:5], 3)}; Δ_2..4 at t = {ts[i14]:.3g}: "
          f"{np.round(delta[i14, 2:5], 3)}, at t = {ts[i52]:.3g}: {np.round(delta[i52, 2:5], 3)}; "
          f"final KL {float(sol.kl[-1]):.1e}")
    assert tau[1] < 0.1 * tau[2:5].min()  # the fields first, by far
    assert delta[i14, 2:5].min() > 0.5 and np.all((0.1 < delta[i52, 2:5]) & (delta[i52, 2:5] < 0.3))  # 2-4 together
assert width[24][1][2] < width[24][1][3:5].min()  # 24 hidden units: pairs cross α before orders 3 and 4
assert width[6][1][2] > width[6][1][3:5].max()  # 6 hidden units: after them

# %% [markdown]
# ## q = 4
#
# Two random teachers on `4^4 = 256` states with couplings of orders 1–3 (std 0.3, 0.25, 0.2),
# Potts RBMs with 24 hidden units, the same flow settings.

# %%
for seed in (0, 1):
    target4 = ef.Target.from_model(ef.targets.random_potts(jax.random.key(seed), 4, 4, {1: 0.3, 2: 0.25, 3: 0.2}))
    sol = ef.flow(ef.PottsRBM.init(jax.random.key(100 + seed), 4, 4, m, scale=eps), target4, t1=ts[-1], **options)
    tau = np.asarray(sol.learning_times(alpha))
    print(f"q = 4, teacher {seed}: τ_1..4 = {np.round(tau[1:], 3)}; final KL {float(sol.kl[-1]):.1e}")
    assert tau[1] < tau[2] < tau[3:5].min() and tau[2] > 10 * tau[1], tau

# %% [markdown]
# ## Δ_k(t) by order
#
# Left and middle: the relative moment mismatch of each order for the first random
# teacher; the dotted line is α and a marker shows τ_k. Order 5 (gray) is absent from the
# teacher's couplings but not from its moments. Right: τ_k against k for every teacher
# (RBM solid, CouplingModel dashed).

# %%
COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "tab:red", 5: "0.55"}
STYLES = {1: "-", 2: "--", 3: "-.", 4: ":", 5: "-"}


def plot_delta(ax, sol, tau, title):
    t, delta = np.asarray(sol.ts)[1:], np.asarray(sol.delta)[1:]
    for k, color in COLORS.items():
        ax.plot(t, delta[:, k], color=color, ls=STYLES[k], lw=2 if k < 5 else 1.2,
                label=f"order {k}: τ_{k} = {tau[k]:.3g}")
        if np.isfinite(tau[k]):
            ax.plot(tau[k], alpha, "o", color=color, ms=7, mec="k")
    ax.axhline(alpha, color="k", ls=":", lw=1)
    ax.set(xscale="log", yscale="log", xlim=(1e-3, 1e4), ylim=(1e-4, 3), xlabel="training time t",
           ylabel="moment mismatch Δ_k(t)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")


first = "random Potts, seed 0"
fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
plot_delta(axes[0], runs[first]["RBM"], taus[first]["RBM"], f"Potts RBM ({m} hidden units), {first}")
plot_delta(axes[1], runs[first]["CouplingModel"], taus[first]["CouplingModel"],
           f"CouplingModel (all 242 couplings, K = I), {first}")
ax = axes[2]
ks = np.arange(1, n + 1)
for (name, pair), color in zip(taus.items(), ["tab:blue", "tab:orange", "tab:green", "tab:purple"]):
    ax.plot(ks, pair["RBM"][1:], "o-", color=color, lw=2, label=f"RBM: {name}")
    ax.plot(ks, pair["CouplingModel"][1:], "s--", color=color, lw=1, mfc="none")
ax.plot([], [], "s--", color="k", lw=1, mfc="none", label="CouplingModel (same colours)")
ax.set(yscale="log", xticks=ks, xlabel="order k", ylabel=f"learning time τ_k (α = {alpha})",
       title="learning time by order, every teacher")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="upper left")
fig.suptitle(f"n = {n}, q = {q}, init std {eps:g}: the Potts RBM learns its fields first and higher orders "
             "decades later, the full-coupling model all orders at once")
fig.tight_layout()
fig.savefig(OUT / "potts_hierarchy.png", dpi=110)
print("figure:", OUT / "potts_hierarchy.png")

# %% [markdown]
# ## What the numbers show
#
# - **The fields come first, by far, for q = 3 and q = 4.** In every run here the fields are
#   learned by t ≈ 1–2 (the visible biases are free parameters at O(1)), one to three decades
#   before any higher order. On the four teachers of the first part
#   `τ_1 < τ_2 < min(τ_3, τ_4)`, the pairs 100–400 times after the fields (asserted: 50–800),
#   and on both q = 4 teachers `τ_1 < τ_2 < min(τ_3, τ_4)` too (τ_2 ≈ 90–115, orders 3 and 4 at
#   310–620).
# - On the plateau (t = 10) every RBM has learned its fields (`Δ_1 < 0.05`) and none its
#   higher orders (`Δ_2`, `Δ_3`, `Δ_4` above 0.25). On the first teacher they fell part of the
#   way together with `Δ_1` at t ≈ 1 (to 0.33, 0.59, 0.76; on the others to 0.75–0.99):
#   moments are not couplings, and learning the fields alone moves the higher moments
#   (products of marginals) toward the data's. The plateau, until t ≈ 40, is the time the
#   weights need to grow from ε = `1e-2`; the couplings of order ≥ 2 only move after that.
# - **The order among orders ≥ 2 is not universal.** On the random teachers of the first part,
#   which have large fields and triplets, order 3 comes before order 4; on the Blume–Capel
#   chain with β = 0.5, whose triplet term is weak and whose fields are zero, order 3 comes
#   *after* order 4 (with zero hidden biases the third derivative of softplus vanishes, so odd
#   orders ≥ 3 also wait for the hidden biases to move, as for spins, THEORY §6). On the
#   example's chain (β = 0.6) orders 2–4 fall *together* once the weights have grown: from
#   above 0.5 at t ≈ 14 to 0.16–0.24 at t ≈ 50, for 6 and for 24 hidden units. Which of them
#   then crosses α = 0.1 first depends on the student: with 24 hidden units the pairs
#   (τ_2 ≈ 300, τ_3 ≈ 370), with 6 the pairs last (τ_2 ≈ 610, τ_3 ≈ 250), their last 16 %
#   of mismatch taking longest. So "low orders first" holds here as "fields first"; the split
#   of orders ≥ 2 at a threshold is a property of the run, not a law.
# - **The full-coupling model has no hierarchy.** Its τ_k over orders 1–4 lie within a
#   factor of 3.5 of each other (at most 3.0 here), in no consistent order, and every one of
#   them is reached (t ≲ 2) long before the RBM has learned its pairs: the hierarchy comes from
#   the RBM's parametrisation, not from the data.
# - With 24 hidden units the RBM fits a random teacher less well than the full model: at
#   t = `1e4` its KL is 7–9 × `1e-3` nats (asserted: 1e-3 to 2e-2; the CouplingModel's about
#   `1e-6`, asserted below 1e-5; on the Blume–Capel chain `2e-4`, asserted below 1e-3), though
#   every order's mismatch is below α by then.
