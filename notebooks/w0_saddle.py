# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The W = 0 spurious saddle of an RBM
#
# An RBM with spin hidden units, `W = 0`, every hidden bias equal to `c` and visible
# fields `atanh(m^D_i)` matches the data's magnetisations and nothing else. It is
# stationary for any target, and a **saddle** whenever the target is correlated
# (THEORY §4): the most negative eigenvalue of `∇²L` is exactly
#
#     λ_min = -(1 - tanh² c) · λ_max(C^D - C^indep),
#
# where `C^D - C^indep` holds the data's connected pair correlations with a zero diagonal.
# This needs two or more hidden units (or `c = 0`): the unstable direction puts `y` on one
# unit's weights and `-y` on another's. With a single unit and `c ≠ 0` the weights couple to
# the visible fields and the true `λ_min` is less negative (`tests/test_analysis.py`).
# `ebmflow.analysis.w0_saddle` builds the point and `w0_saddle_eigenvalue` gives the
# prediction. Below: prediction against the computed Hessian for several `c`, then a
# flow started next to the saddle, which escapes along the unstable directions at the
# predicted rate.
#
# Run as a script (`python notebooks/w0_saddle.py`, about half a minute on 2 cores) or open
# with jupytext. Figures go to `notebooks/_out/` (or `$EBMFLOW_NOTEBOOK_OUT`).

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
# ## The saddle and its stability report (c = 0)

# %%
n, m = 5, 3
teacher = ef.targets.random_ising(jax.random.key(2), n, {1: 0.2, 2: 0.3, 3: 0.1})
target = ef.Target.from_model(teacher)
saddle = ef.analysis.w0_saddle(target, m, c=0.0)
report = ef.stability(saddle, target, eigenvectors=True)
print(report.summary())
print("lowest eigenvalues:", np.round(report.eigenvalues[:7], 6))
assert report.kind == "spurious" and report.n_unstable > 0

# %% [markdown]
# ## Predicted against computed, for several hidden biases c
#
# The Hessian is computed exactly (`ebmflow.hessian`, dense, float64) and diagonalised.

# %%
cs = [0.0, 0.5, 1.0, 1.5, 2.0]
computed, predicted = [], []
print("   c    computed λ_min        predicted             relative difference")
for c in cs:
    lam = np.linalg.eigvalsh(np.asarray(ef.hessian(ef.analysis.w0_saddle(target, m, c), target)))
    computed.append(lam[0])
    predicted.append(ef.analysis.w0_saddle_eigenvalue(target, m, c))
    print(f"  {c:3.1f}  {computed[-1]: .15f}  {predicted[-1]: .15f}  {abs(computed[-1] / predicted[-1] - 1):.1e}")
np.testing.assert_allclose(computed, predicted, rtol=1e-12)

# %% [markdown]
# ## Escaping the saddle
#
# Start at the saddle with small random weights of size δ and follow the exact flow.
# Near the saddle the weights grow like `a · exp(|λ_min| t)`, where `a` is the size of
# the initial perturbation's component in the eigenspace of `λ_min`: a prediction with
# no fitted parameter. The escape time grows like `log(1/δ) / |λ_min|`; the unperturbed
# saddle (δ = 0) never moves.

# %%
lam_min = report.eigenvalues[0]
unstable_space = report.eigenvectors[:, np.isclose(report.eigenvalues, lam_min, rtol=1e-8)]
theta_saddle, unflatten = ef.flatten(saddle)
ts = np.linspace(0.0, 40.0, 161)
runs = {}
for delta in [0.0, 1e-4, 1e-8]:
    kick = delta * jax.random.normal(jax.random.key(5), saddle.weights.shape)
    start = ef.RBM(saddle.weights + kick, saddle.visible_bias, saddle.hidden_bias, hidden="spin")
    a = np.linalg.norm(unstable_space.T @ np.asarray(ef.flatten(start)[0] - theta_saddle))
    sol = ef.flow(start, target, t1=ts[-1], ts=ts)
    w_norm = np.linalg.norm(np.asarray(sol.models.weights).reshape(ts.size, -1), axis=1)
    runs[delta] = dict(kl=np.asarray(sol.kl), w=w_norm, a=a)
    # Growth rate where the linearisation holds: after the slower unstable modes have fallen behind
    # (|λ_2| = 0.34 here, so by t = 4 they carry a few percent), and before W is O(0.1).
    window = (ts >= 4) & (w_norm < 1e-2) & (w_norm > 0)
    rate = np.polyfit(ts[window], np.log(w_norm[window]), 1)[0] if window.sum() > 3 else None
    runs[delta]["rate"] = rate
    growth = "" if rate is None else f"; growth rate of ||W|| {rate:.4f} (|λ_min| = {-lam_min:.4f})"
    print(f"δ = {delta:g}: {sol.message}; KL {runs[delta]['kl'][0]:.4f} -> {runs[delta]['kl'][-1]:.4f} nats{growth}")
assert np.all(runs[0.0]["w"] == 0) and np.ptp(runs[0.0]["kl"]) < 1e-12
assert abs(runs[1e-8]["rate"] / -lam_min - 1) < 0.02
assert all(runs[d]["kl"][-1] < 0.1 * runs[d]["kl"][0] for d in (1e-4, 1e-8))

# The escape is delayed by log(1e4) / |λ_min| between δ = 1e-4 and δ = 1e-8.
half = 0.5 * (runs[1e-4]["kl"][0] + runs[1e-4]["kl"][-1])
t_escape = {d: np.interp(-half, -runs[d]["kl"], ts) for d in (1e-4, 1e-8)}
delay, predicted_delay = t_escape[1e-8] - t_escape[1e-4], np.log(1e4) / -lam_min
print(f"escape delay {delay:.3f}, predicted log(1e4)/|λ_min| = {predicted_delay:.3f}")
assert abs(delay / predicted_delay - 1) < 0.05

# %% [markdown]
# ## Figures
#
# Left: prediction and computation agree to rounding for every `c`. Middle: the KL stays
# on the saddle's plateau (the independent-spins model) until the weights are O(1); it
# then passes a second, shorter plateau before the hidden units have all been recruited.
# Right: the weights follow the parameter-free prediction over many decades.

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
c_grid = np.linspace(0, 2.5, 101)
axes[0].plot(c_grid, [ef.analysis.w0_saddle_eigenvalue(target, m, c) for c in c_grid], "-", color="tab:blue",
             label="predicted  -(1 - tanh² c) λ_max(C^D - C^indep)")
axes[0].plot(cs, computed, "o", ms=8, mfc="none", mew=2, color="tab:red", label="computed: lowest eigenvalue of ∇²L")
axes[0].set_xlabel("common hidden bias c")
axes[0].set_ylabel("most negative Hessian eigenvalue λ_min")
axes[0].set_title(f"W = 0 saddle (n = {n}, {m} hidden units)")
axes[0].legend(fontsize=8, loc="lower right")
axes[0].grid(alpha=0.3)

colors = {0.0: "0.5", 1e-4: "tab:blue", 1e-8: "tab:orange"}
for delta, run in runs.items():
    label = "δ = 0 (at the saddle)" if delta == 0 else f"δ = {delta:g}"
    axes[1].plot(ts, run["kl"], color=colors[delta], lw=2, ls="--" if delta == 0 else "-", label=label)
    if delta > 0:
        axes[2].semilogy(ts, run["w"], color=colors[delta], lw=2, label=f"{label}: ||W(t)||")
        axes[2].semilogy(ts, run["a"] * np.exp(-lam_min * ts), color=colors[delta], ls=":", lw=1.5,
                         label=f"{label}: a·exp(|λ_min| t), no fit")
axes[1].set_xlabel("training time t")
axes[1].set_ylabel("KL(p_D || p_θ)  [nats]")
axes[1].set_title("The flow leaves the saddle's plateau after a delay ∝ log(1/δ)")
axes[1].legend(fontsize=8)
axes[1].grid(alpha=0.3)
axes[2].set_ylim(1e-9, 10)
axes[2].set_xlabel("training time t")
axes[2].set_ylabel("weight norm ||W(t)||")
axes[2].set_title("Escape along the unstable directions at rate |λ_min|")
axes[2].legend(fontsize=8, loc="lower right")
axes[2].grid(alpha=0.3)
fig.tight_layout()
fig.savefig(OUT / "w0_saddle.png", dpi=110)
print("figure:", OUT / "w0_saddle.png")
