"""The exact gradient flow (THEORY §3, §6) against NumPy brute force and `scipy.integrate.solve_ivp`.

Compiling a flow costs seconds, running one at n = 4 milliseconds: tests share the
compiled programs (same model shapes, `TS` and `TIGHT`), and the flows they
compare live in module-scoped fixtures.
"""

import logging
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import reference as ref
import reference_flow as rf
from models import random_probs, rbm

import ebmflow
from ebmflow import save_times
from ebmflow._objective import Objective
from ebmflow._tree import cast_parameters

N = 4
TIGHT = dict(rtol=1e-8, atol=1e-10)
H = 1e-3  # time step of the central differences of the KL in time, around t = 0.5 and t = 2
TS = np.array([0.0, 0.1, 0.5 - H, 0.5, 0.5 + H, 1.0, 2.0 - H, 2.0, 2.0 + H, 3.0])
T1 = 3.0
# ebmflow at rtol 1e-8 against solve_ivp at rtol 1e-10: global errors ~1e-8 on O(1) parameters.
ODE = {"rtol": 0, "atol": 1e-6}
EXACT = {"rtol": 0, "atol": 1e-10}


def ising(n, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    return ebmflow.Ising(scale * rng.normal(size=n), scale * rng.normal(size=n * (n - 1) // 2))


def higher_order_ising(n, max_order, seed, scale=0.3):
    subsets = ebmflow.HigherOrderIsing.subsets_up_to(n, max_order)
    return ebmflow.HigherOrderIsing(n, subsets, scale * np.random.default_rng(seed).normal(size=len(subsets)))


def rbm_target(seed=1):
    return ebmflow.Target.from_probs(random_probs(N, seed=seed))


MODELS = {
    "rbm-spin": lambda: rbm(N, 3, seed=1, scale=0.5),
    "ising": lambda: ising(N, seed=2),
    "hoi3": lambda: higher_order_ising(N, 3, seed=3),
}


def member(tree, i):
    """Member ``i`` of a batched pytree (arrays indexed, static fields kept)."""
    return jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, tree)


class Run:
    """One flow from ebmflow on `TS`, the same flow from `solve_ivp`, and the NumPy problem."""

    def __init__(self, model_id):
        self.model = MODELS[model_id]()
        self.p_data = random_probs(N, seed=1)
        self.target = ebmflow.Target.from_probs(self.p_data)
        self.sol = ebmflow.flow(self.model, self.target, T1, ts=TS, **TIGHT)
        self.problem = rf.Problem(self.model, self.p_data)
        self.reference = self.problem.flow(TS)  # (T, P), this module's layout
        # The saved parameters of ebmflow, in the reference's layout.
        self.thetas = np.stack([rf.pack(rf.params(self.sol.models, i)) for i in range(len(TS))])


@pytest.fixture(scope="module", params=list(MODELS))
def run(request):
    return Run(request.param)


# ----------------------------------------------------------------------------- the reference itself


@pytest.mark.parametrize("model_id", [*list(MODELS), "walsh"])
def test_reference_gradient_is_the_kl_gradient(model_id):
    """The closed-form per-state derivatives of reference_flow against the loop formula of reference.py."""
    if model_id == "walsh":
        model = ebmflow.WalshModel(0.3 * np.random.default_rng(4).normal(size=2**N - 1))
    else:
        model = MODELS[model_id]()
    p_data = random_probs(N, seed=1)
    problem = rf.Problem(model, p_data)
    np.testing.assert_allclose(problem.neg_energies(problem.theta0), ref.neg_energies(model), **EXACT)

    def kl(theta):
        fields = problem.unpack(theta)
        return ref.kl(ref.neg_energies(eqx.tree_at(lambda m: [getattr(m, f) for f in fields], model,
                                                   list(fields.values()))), p_data)

    # Central differences at h = 1e-5: truncation and rounding both ~1e-10.
    np.testing.assert_allclose(problem.grad(problem.theta0), ref.central_difference(kl, problem.theta0),
                               rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------- trajectories


def test_flow_matches_solve_ivp(run):
    assert run.sol.result == ebmflow.RESULTS.successful
    np.testing.assert_array_equal(run.sol.ts, TS)
    assert float(run.sol.t_final) == T1
    np.testing.assert_allclose(run.thetas, run.reference, **ODE)
    for name, value in run.problem.unpack(run.reference[-1]).items():  # field by field, at t1
        np.testing.assert_allclose(np.asarray(getattr(run.sol.models, name))[-1], value, **ODE)
    kl = [run.problem.kl(theta) for theta in run.reference]
    np.testing.assert_allclose(run.sol.kl, kl, rtol=0, atol=1e-8)  # KL error ~ ||∇KL|| ||δθ||
    assert run.sol.kl[-1] < 0.9 * run.sol.kl[0]  # the parameters did move


def test_kl_is_non_increasing(run):
    assert np.all(np.diff(np.asarray(run.sol.kl)) <= 1e-12)


def test_kl_decays_at_the_squared_gradient_norm(run):
    """``dL/dt = -||∇L||²`` (THEORY §3): central differences in time of the saved KL.

    Truncation ~H² L''' ~1e-6 and the KL's integration error ~1e-10 / H: a relative 1e-4.
    """
    kl, grad_norm = np.asarray(run.sol.kl), np.asarray(run.sol.grad_norm)
    for i in (3, 7):  # t = 0.5 and t = 2, bracketed by t ± H
        assert TS[i + 1] - TS[i] == pytest.approx(H) and TS[i] - TS[i - 1] == pytest.approx(H)
        dkl_dt = (kl[i + 1] - kl[i - 1]) / (TS[i + 1] - TS[i - 1])
        assert dkl_dt == pytest.approx(-(grad_norm[i] ** 2), rel=1e-4)


# ----------------------------------------------------------------------------- observables (THEORY §6)


def test_observables_match_numpy(run):
    """Every per-save observable recomputed from the saved parameters, by NumPy over all states."""
    sol = run.sol
    for i in range(len(TS)):
        neg_e = run.problem.neg_energies(run.thetas[i])
        expected = rf.observables(neg_e, run.p_data)
        assert float(sol.kl[i]) == pytest.approx(expected["kl"], abs=1e-10)
        assert float(sol.grad_norm[i]) == pytest.approx(np.linalg.norm(run.problem.grad(run.thetas[i])), abs=1e-10)
        for name in ("moment_mismatch", "coupling_error", "coupling_norms"):
            np.testing.assert_allclose(getattr(sol, name)[i], expected[name], **EXACT, err_msg=name)
    initial = rf.observables(run.problem.neg_energies(run.problem.theta0), run.p_data)
    np.testing.assert_allclose(sol.initial_mismatch, initial["moment_mismatch"], **EXACT)
    j_star = ref.couplings_from_neg_energies(np.log(run.p_data))
    j_star[0] = 0.0
    np.testing.assert_allclose(sol.target_coupling_norms, rf.order_norms(j_star), **EXACT)
    np.testing.assert_allclose(sol.coupling_error[:, 0], 0, atol=0)  # the gauge J_∅ is never compared
    np.testing.assert_allclose(sol.moment_mismatch[:, 0], 0, atol=0)  # m_∅ = 1 for every distribution


def test_delta_and_relative_coupling_error(run):
    sol = run.sol
    mismatch, initial = np.asarray(sol.moment_mismatch), np.asarray(sol.initial_mismatch)
    delta = np.asarray(sol.delta)
    assert np.all(np.isnan(delta[:, 0]))  # order 0: no mismatch to relax
    np.testing.assert_allclose(delta[:, 1:], mismatch[:, 1:] / initial[1:], rtol=1e-12)
    np.testing.assert_allclose(delta[0, 1:], 1.0, rtol=1e-12)
    rel = np.asarray(sol.relative_coupling_error)
    norms = np.asarray(sol.target_coupling_norms)
    np.testing.assert_allclose(rel[:, 1:], np.asarray(sol.coupling_error)[:, 1:] / norms[1:], rtol=1e-12)
    assert np.all(np.isnan(rel[:, 0]))


@pytest.mark.parametrize("alpha", [0.3, 0.6, 0.9])
def test_learning_times_match_numpy_first_passage(run, alpha):
    """τ_k(α) of the saved trajectory against a loop over the NumPy Δ_k on the same grid."""
    expected_mismatch = np.array([rf.observables(run.problem.neg_energies(t), run.p_data)["moment_mismatch"]
                                  for t in run.thetas])
    delta = expected_mismatch / np.where(expected_mismatch[0] > 0, expected_mismatch[0], np.nan)
    taus = np.asarray(run.sol.learning_times(alpha))
    assert math.isnan(taus[0])
    for k in range(1, N + 1):
        expected = rf.first_passage(TS, delta[:, k], alpha)
        if math.isinf(expected):
            assert math.isinf(taus[k])
        else:
            assert taus[k] == pytest.approx(expected, rel=1e-8), k


@jax.jit
def _synthetic_learning_times(ts, delta, alpha):
    """`FlowSolution.learning_times` of a solution carrying only Δ (as mismatch / initial mismatch 1).

    Orders whose Δ is all NaN get an initial mismatch of 0 (undefined Δ). Jitted: one program.
    """
    undefined = jnp.all(jnp.isnan(delta), axis=-2)
    sol = ebmflow.FlowSolution(
        ts=ts, models=None, kl=jnp.zeros(ts.shape), grad_norm=jnp.zeros(ts.shape),
        moment_mismatch=jnp.nan_to_num(delta), coupling_error=jnp.zeros_like(delta),
        coupling_norms=jnp.zeros_like(delta), initial_mismatch=jnp.where(undefined, 0.0, 1.0),
        target_coupling_norms=jnp.ones(undefined.shape), t_final=ts[..., -1],
        result=ebmflow.RESULTS.successful, stats={},
    )
    return sol.learning_times(alpha)


def test_learning_times_interpolate_log_delta_in_log_time():
    """Closed forms: ``Δ = (t/t0)^-γ`` is linear in log-log, ``Δ = e^{-t/c}`` is linear in ``t`` from ``t = 0``."""
    alpha = 0.2
    ts = np.concatenate([[0.0], np.logspace(-2, 3, 11)])
    gamma, t0, c, c_early = 0.7, 0.5, 0.05, 0.004
    power = np.minimum(1.0, (np.maximum(ts, 1e-300) / t0) ** -gamma)
    decay = np.exp(-ts / c)  # crosses α inside a log-spaced bracket, where interpolation is not exact
    early = np.exp(-ts / c_early)  # crosses α in the first interval [0, 0.01]
    never = np.full_like(ts, 0.95)
    undefined = np.full_like(ts, np.nan)
    delta = np.stack([undefined, power, decay, early, never], axis=-1)  # (T, k)
    # a batch of two solutions: the second has its orders in reverse and a shifted grid
    ts_batch = np.stack([ts, 2 * ts])
    delta_batch = np.stack([delta, delta[:, ::-1]])
    taus = np.asarray(_synthetic_learning_times(ts_batch, delta_batch, alpha))
    assert taus.shape == (2, 5)
    assert math.isnan(taus[0, 0]) and math.isnan(taus[1, 4])
    assert taus[0, 1] == pytest.approx(t0 * alpha ** (-1 / gamma), rel=1e-12)
    assert taus[0, 3] == pytest.approx(c_early * math.log(1 / alpha), rel=1e-12)
    assert math.isinf(taus[0, 4]) and math.isinf(taus[1, 0])
    for b in range(2):
        for k in range(5):
            expected = rf.first_passage(ts_batch[b], delta_batch[b, :, k], alpha)
            if math.isfinite(expected):
                assert taus[b, k] == pytest.approx(expected, rel=1e-12), (b, k)
    assert taus[1, 3] == pytest.approx(2 * t0 * alpha ** (-1 / gamma), rel=1e-12)  # power law on the 2t grid


# ----------------------------------------------------------------------------- convex case (THEORY §3)


def test_walsh_model_flow_converges_to_target_couplings():
    """G = I: the flow of the full generalised Ising model reaches J* = 2^-n H ln p_D (explicit Hadamard)."""
    model = ebmflow.WalshModel(0.1 * np.random.default_rng(5).normal(size=2**N - 1))
    p_data = random_probs(N, seed=6)
    ts = np.array([0.0, 1.0, 10.0, 100.0, 500.0, 1e3])
    sol = ebmflow.flow(model, ebmflow.Target.from_probs(p_data), 1e3, ts=ts, steady_tol=1e-10, **TIGHT)
    assert sol.result == ebmflow.RESULTS.steady_state, sol.message
    t_final = float(sol.t_final)
    assert 100.0 < t_final < 500.0  # the slowest mode decays at rate λ_min(C*) ≈ 0.063: t ~ 20 / 0.063
    couplings = np.asarray(sol.models.couplings)
    # before the stop: the trajectory of solve_ivp
    np.testing.assert_allclose(couplings[:4], rf.Problem(model, p_data).flow(ts[:4]), **ODE)
    # after it: the final state, repeated
    np.testing.assert_array_equal(couplings[4], couplings[5])
    j_star = ref.hadamard(N) @ np.log(p_data) / 2**N
    # ||∇L|| = ||m^θ - m^D|| <= 1e-10 and the Hessian in J is C ⪰ 0.063 I: ||J - J*|| <= 2e-9.
    np.testing.assert_allclose(couplings[-1], j_star[1:], rtol=0, atol=2e-9)
    assert float(sol.grad_norm[-1]) <= 1e-10
    assert abs(float(sol.kl[-1])) < 1e-14  # ~||J - J*||² and rounding
    np.testing.assert_allclose(sol.relative_coupling_error[-1, 1:], 0, atol=1e-8)


# ----------------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def rbm_batch():
    """Three RBMs over keys, as the `flow_batch` docstring builds them (the shapes of MODELS["rbm-spin"])."""
    return eqx.filter_vmap(lambda k: ebmflow.RBM.init(k, N, 3, scale=0.1, bias_scale=0.3))(
        jax.random.split(jax.random.PRNGKey(7), 3)
    )


def assert_same_solution(got, expected, atol=1e-9):
    """Two flows of the same problem, one vmapped: equal up to the rounding of batched linear algebra."""
    assert int(got.result._value) == int(expected.result._value)
    for name in ("kl", "grad_norm", "moment_mismatch", "coupling_error", "coupling_norms", "initial_mismatch",
                 "target_coupling_norms", "t_final"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=atol, err_msg=name)
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(got.models, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(expected.models, eqx.is_array))):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    for key in expected.stats:
        assert int(got.stats[key]) == int(expected.stats[key]), key


def test_flow_batch_equals_a_loop_and_reports_a_nan_member(rbm_batch):
    target = rbm_target()
    weights = rbm_batch.weights.at[1, 0, 0].set(jnp.nan)
    models = eqx.tree_at(lambda m: m.weights, rbm_batch, weights)
    batch = ebmflow.flow_batch(models, target, T1, ts=TS, **TIGHT)
    codes = np.asarray(batch.result._value)
    assert codes.tolist() == [ebmflow.RESULTS.successful._value, ebmflow.RESULTS.nonfinite._value,
                              ebmflow.RESULTS.successful._value]
    np.testing.assert_array_equal(np.asarray(batch.ok), [True, False, True])
    for i in (0, 2):
        assert_same_solution(member(batch, i), ebmflow.flow(member(models, i), target, T1, ts=TS, **TIGHT))
    assert np.all(np.isnan(np.asarray(batch.kl)[1]))
    assert "NaN" in batch.message[1] and batch.message[0].startswith("successful")

    # summarize against NumPy on the batch arrays
    alpha = 0.5
    final_kl = np.asarray(batch.kl)[:, -1]
    ok = np.array([True, False, True])
    kl_eps = float(np.mean(final_kl[ok]))  # between the two successful members: one of three converged
    summary = ebmflow.summarize(batch, kl_eps=kl_eps, alpha=alpha)
    assert summary["members"] == 3 and summary["ok"] == 2
    assert summary["results"] == {"successful": 2, "nonfinite": 1}
    assert summary["fraction_converged"] == pytest.approx(1 / 3)
    assert summary["final_kl"]["min"] == pytest.approx(final_kl[ok].min(), abs=0)
    assert summary["final_kl"]["max"] == pytest.approx(final_kl[ok].max(), abs=0)
    assert summary["final_kl"]["median"] == pytest.approx(np.median(final_kl[ok]), rel=1e-15)
    mismatch = np.asarray(batch.moment_mismatch)[ok]
    initial = np.asarray(batch.initial_mismatch)[ok]
    for k in range(1, N + 1):
        taus = np.array([rf.first_passage(TS, mismatch[b, :, k] / initial[b, k], alpha) for b in range(2)])
        reached = taus[np.isfinite(taus)]
        if reached.size == 0:
            assert k not in summary["learning_times"]
            continue
        stats = summary["learning_times"][k]
        assert stats["fraction"] == pytest.approx(reached.size / 2)
        for name, q in (("q10", 0.1), ("median", 0.5), ("q90", 0.9)):
            # quantiles with linear interpolation between order statistics, by hand
            srt = np.sort(reached)
            pos = q * (srt.size - 1)
            lo = math.floor(pos)
            value = srt[lo] + (pos - lo) * (srt[min(lo + 1, srt.size - 1)] - srt[lo])
            assert stats[name] == pytest.approx(value, rel=1e-8), (k, name)
    assert summary["learning_times"], "no order relaxed to alpha: the check above was empty"


def test_flow_batch_with_a_batch_of_targets(rbm_batch):
    targets = [rbm_target(seed) for seed in (11, 12, 13)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *targets)
    assert stacked.probs.shape == (3, 2**N)
    batch = ebmflow.flow_batch(rbm_batch, stacked, T1, ts=TS, **TIGHT)
    assert np.all(np.asarray(batch.ok))
    for i, target in enumerate(targets):
        assert_same_solution(member(batch, i), ebmflow.flow(member(rbm_batch, i), target, T1, ts=TS, **TIGHT))
    # and the members differ: each followed its own target
    assert not np.allclose(np.asarray(batch.kl)[0], np.asarray(batch.kl)[1])


# ----------------------------------------------------------------------------- compilation


def test_equal_shapes_do_not_recompile(caplog):
    """Models and targets are dynamic arguments: new values (and a new t1) reuse the compiled `_solve`."""
    ebmflow.flow(MODELS["rbm-spin"](), rbm_target(), T1, ts=TS, **TIGHT)  # compiled here or by an earlier test
    other_model, other_target = rbm(N, 3, seed=9, scale=0.2), rbm_target(seed=21)
    with caplog.at_level(logging.DEBUG), jax.log_compiles():
        caplog.clear()
        jax.jit(lambda x: x + 1.0)(jnp.arange(3.0))  # control: a fresh program is logged
        assert any("Compiling" in r.getMessage() for r in caplog.records), "jax.log_compiles() is not captured"
        caplog.clear()
        sol = ebmflow.flow(other_model, other_target, 2.5, ts=TS * 2.5 / T1, **TIGHT)
        jax.block_until_ready(sol.kl)
    compiled = [r.getMessage() for r in caplog.records if "_solve" in r.getMessage()]
    assert not compiled, compiled
    assert sol.result == ebmflow.RESULTS.successful


# ----------------------------------------------------------------------------- gradients through the flow


GRAD_TS = np.array([0.0, 0.5, 1.0])


@pytest.fixture(scope="module")
def differentiable_flow():
    """``(θ0, p_D) ↦ KL(t = 1)`` of an Ising model (n = 3), jitted with its gradient (one compilation)."""
    model = ising(3, seed=8, scale=0.4)
    theta0, unflatten = ebmflow.flatten(model)

    def final_kl(theta, probs):
        # Target built inside the trace: perturbed probability vectors need not sum to 1 exactly.
        sol = ebmflow.flow(unflatten(theta), ebmflow.Target(probs), 1.0, ts=GRAD_TS, rtol=1e-10, atol=1e-12)
        return sol.kl[-1]

    value_and_grad = eqx.filter_jit(jax.value_and_grad(final_kl, argnums=(0, 1)))
    return np.asarray(theta0), random_probs(3, seed=9), value_and_grad


def test_gradient_through_the_flow_matches_finite_differences(differentiable_flow):
    """Reverse mode through the RODAS4 solve vs central differences of the same flow.

    h = 1e-4: truncation ~h² ~1e-8, the solve's error (rtol 1e-10) / h ~1e-7: relative 1e-5.
    """
    theta0, p, value_and_grad = differentiable_flow
    value, (g_theta, g_probs) = value_and_grad(theta0, p)
    assert np.all(np.isfinite(g_theta)) and np.all(np.isfinite(g_probs))
    f = lambda theta, probs: float(value_and_grad(theta, probs)[0])  # noqa: E731 (same compiled program)
    h = 1e-4
    fd_theta = ref.central_difference(lambda t: f(t, p), theta0, h)
    np.testing.assert_allclose(g_theta, fd_theta, rtol=1e-5, atol=1e-7)
    rng = np.random.default_rng(10)
    for _ in range(2):  # directional derivatives in probability space
        v = rng.normal(size=p.size)
        fd = (f(theta0, p + h * v) - f(theta0, p - h * v)) / (2 * h)
        assert float(g_probs @ v) == pytest.approx(fd, rel=1e-5, abs=1e-7)
    # and the value is the KL of the reference flow
    problem = rf.Problem(ising(3, seed=8, scale=0.4), p)
    assert float(value) == pytest.approx(problem.kl(problem.flow(GRAD_TS)[-1]), abs=1e-9)


# ----------------------------------------------------------------------------- failures and bad input


def test_max_steps_reached():
    model, target = MODELS["ising"](), rbm_target()
    with pytest.raises(RuntimeError, match="max_steps reached"):
        ebmflow.flow(model, target, T1, ts=TS, max_steps=4, **TIGHT)
    sol = ebmflow.flow(model, target, T1, ts=TS, max_steps=4, throw=False, **TIGHT)
    assert sol.result == ebmflow.RESULTS.max_steps_reached
    assert not bool(sol.ok)
    assert "max_steps reached" in sol.message and "raise max_steps" in sol.message
    assert int(sol.stats["num_steps"]) == 4
    t_final = float(sol.t_final)
    assert 0 < t_final < T1
    kl = np.asarray(sol.kl)
    reached = TS <= t_final
    assert np.all(np.isfinite(kl[reached])) and np.all(np.isnan(kl[~reached]))  # NaN after the failure


def test_nonfinite_initial_parameters_are_refused():
    target = rbm_target()
    model = MODELS["rbm-spin"]()
    for bad in (np.nan, np.inf):
        broken = eqx.tree_at(lambda m: m.hidden_bias, model, model.hidden_bias.at[0].set(bad))
        with pytest.raises(ValueError, match=r"RBM\.hidden_bias has NaN or infinite entries"):
            ebmflow.flow(broken, target, 1.0)
        with pytest.raises(ValueError, match="NaN or infinite"):
            ebmflow.train(broken, target, optax.sgd(0.1), 10)
        # a batch checks its first member up front (the others report RESULTS.nonfinite)
        with pytest.raises(ValueError, match="NaN or infinite"):
            ebmflow.flow_batch(jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), broken), target, 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(t1=0.0), r"t1 must be a positive finite time \(a number\); got 0.0"),
        (dict(t1="1"), r"t1 must be a positive finite time \(a number\); got '1'"),
        (dict(t1=[1.0, 2.0]), "t1 must be a positive finite time"),
        (dict(num_saves=0), "num_saves must be a positive int; got 0"),
        (dict(t1=-1.0), "t1 must be a positive finite time"),
        (dict(t1=np.inf), "t1 must be a positive finite time"),
        (dict(t1=np.nan), "t1 must be a positive finite time"),
        (dict(ts=[0.0, 2.0, 1.0]), r"ts must be increasing save times in \[0, t1=3.0\]"),
        (dict(ts=[0.0, 1.0, 1.0]), "ts must be increasing save times"),
        (dict(ts=[-0.5, 1.0]), "ts must be increasing save times"),
        (dict(ts=[0.0, 4.0]), "ts must be increasing save times"),
        (dict(ts=[]), "ts must be increasing save times"),
        (dict(ts=[[0.0, 1.0]]), "ts must be increasing save times"),
        (dict(rtol=0.0), "rtol and atol must be positive; got rtol=0.0"),
        (dict(atol=-1e-9), "rtol and atol must be positive"),
        (dict(steady_tol=0.0), "steady_tol must be positive or None; got 0.0"),
        (dict(steady_tol=-1.0), "steady_tol must be positive or None"),
    ],
)
def test_bad_arguments(kwargs, match):
    model, target = MODELS["ising"](), rbm_target()
    kwargs = dict(t1=T1) | kwargs
    with pytest.raises(ValueError, match=match):
        ebmflow.flow(model, target, **kwargs)
    models = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), model)
    with pytest.raises(ValueError, match=match):
        ebmflow.flow_batch(models, target, **kwargs)


def test_flow_batch_needs_a_batch_axis():
    model, target = rbm(4, 3, seed=0), rbm_target()
    with pytest.raises(ValueError, match=r"flow_batch needs models with one leading batch axis on every parameter.*"
                                         r"got leading sizes \[3, 4\] \(for a single model, use ebmflow\.flow\)"):
        ebmflow.flow_batch(model, target, 1.0)


def test_mismatched_target_is_refused():
    with pytest.raises(ValueError, match="model has n=4 spins but the target has n=3"):
        ebmflow.flow(MODELS["ising"](), ebmflow.Target.from_probs(random_probs(3)), 1.0)
    with pytest.raises(TypeError, match=r"expected an ebmflow\.Target"):
        ebmflow.flow(MODELS["ising"](), random_probs(N), 1.0)


@pytest.mark.parametrize("t1", [5.0, 12.0, 20.0, 43.0, 200.0, 1e3, 0.3, 7e-3])
def test_default_save_times_end_exactly_at_t1(t1):
    """Regression: 10**log10(t1) overshot t1 by an ulp for about a third of t1 values, and flow refused its own ts."""
    ts = save_times(t1)
    assert ts[0] == 0.0 and ts[-1] == t1 and np.all(np.diff(ts) > 0) and ts.size == 62
    assert ts[1] == pytest.approx(min(t1 / 1e6, 0.1))
    # The default grid passes the checks of `flow` (the next check, on rtol, is the one that fails).
    with pytest.raises(ValueError, match="rtol and atol must be positive"):
        ebmflow.flow(MODELS["ising"](), rbm_target(), t1, rtol=-1.0)


# ----------------------------------------------------------------------------- hierarchy (THEORY §6)


def hierarchy(n, n_hidden, t1, alpha):
    """τ_k(α) of an RBM with spin hidden units learning a random teacher of orders 1-4 from small weights.

    Teacher: `random_ising` with every subset of orders 1-4 and couplings i.i.d. N(0, 0.3²)
    (key 1). Student: `RBM.init` (key 2), weights i.i.d. N(0, 1e-2²), zero biases.
    Default tolerances (rtol 1e-6); 31 log-spaced saves from t = 0.1 to t1.
    """
    teacher = ebmflow.targets.random_ising(jax.random.PRNGKey(1), n, {1: 0.3, 2: 0.3, 3: 0.3, 4: 0.3})
    model = ebmflow.RBM.init(jax.random.PRNGKey(2), n, n_hidden, scale=1e-2)
    ts = np.concatenate([[0.0], np.logspace(-1, math.log10(t1), 31)])
    sol = ebmflow.flow(model, ebmflow.Target.from_model(teacher), t1, ts=ts)
    delta = np.asarray(sol.delta)
    # flowed long enough: every order 1-4 has relaxed below α at t1
    assert np.all(delta[-1, 1:5] <= alpha), delta[-1]
    assert float(sol.kl[-1]) < 0.1 * float(sol.kl[0])
    return np.asarray(sol.learning_times(alpha))


@pytest.mark.slow  # the issue's own size (below) runs by default; this second size adds 14 s
def test_low_orders_are_learned_first():
    """n = 6, 16 hidden units (P = 118), t1 = 100, α = 0.1: the ordering of THEORY §6 at a second size.

    Measured (float64, this repository): τ_1 ≈ 2.7, τ_2 ≈ 16.2, τ_3 ≈ 68.5, τ_4 ≈ 67.5.
    """
    taus = hierarchy(6, 16, 100.0, alpha=0.1)
    assert taus[1] <= taus[2] < min(taus[3], taus[4]), taus


def test_low_orders_are_learned_first_theory_toy():
    """The toy observation of THEORY §6: n = 8, M = 64 spin hidden units, init std 1e-2, α = 0.1.

    P = 584: a 584 × 584 Hessian and LU per step, about 20 s on two CPU cores.

    Measured (float64, this repository): τ_1 ≈ 8.0, τ_2 ≈ 9.7, τ_3 ≈ 54.8, τ_4 ≈ 45.7
    (odd order 3 lags order 4: with zero hidden biases odd derivatives of ln cosh vanish).
    """
    taus = hierarchy(8, 64, 100.0, alpha=0.1)
    assert taus[1] <= taus[2] < min(taus[3], taus[4]), taus


def test_flow_and_analyses_run_in_the_model_dtype():
    """A float32 model with a float64 target (the usual case: teachers are float64) gives float32 work."""
    target = ebmflow.Target.from_probs(random_probs(4, seed=2))
    model = rbm(4, 2, seed=3, scale=0.1)
    model32 = cast_parameters(model, np.float32)
    sol32 = ebmflow.flow(model32, target, 10.0, num_saves=5, rtol=1e-5, atol=1e-7)
    assert {sol32.models.weights.dtype, sol32.kl.dtype, sol32.ts.dtype} == {np.dtype(np.float32)}
    # its KL is float32 rounding of the float64 KL of the same saved models (the trajectory itself is
    # checked against float64 in test_hessian.py)
    models64 = cast_parameters(sol32.models, np.float64)
    kl64 = eqx.filter_jit(eqx.filter_vmap(lambda m: ebmflow.kl(m, target)))(models64)
    np.testing.assert_allclose(sol32.kl, kl64, rtol=0, atol=1e-6)
    pair = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), model32)
    batch = eqx.filter_eval_shape(ebmflow.flow_batch, pair, target, 1.0, num_saves=3)  # dtypes without compiling
    assert batch.models.weights.dtype == batch.kl.dtype == np.float32
    trained = ebmflow.train(model32, target, optax.sgd(0.1), 5)
    assert trained.models.weights.dtype == np.float32
    assert ebmflow.hessian(model32, target).dtype == np.float32
    # refinement needs float64: it comes back in float64 and converges where float32 could not
    point = ebmflow.fixed_point(model32, ebmflow.Target.from_model(model), tol=1e-10)
    assert point.converged and point.model.weights.dtype == np.float64, point.message


@pytest.mark.parametrize("steady_tol", [None, 1e-3])
def test_gradient_evaluations_are_counted(monkeypatch, steady_tol):
    """The reported count against a counter run inside the compiled gradient (n = 3: a fresh trace)."""
    calls = []
    original = Objective._gradient

    def counted(self, theta, probs, penalty):
        jax.debug.callback(lambda: calls.append(1))
        return original(self, theta, probs, penalty)

    monkeypatch.setattr(Objective, "_gradient", counted)
    target = ebmflow.Target.from_probs(random_probs(3, seed=4))
    sol = ebmflow.flow(rbm(3, 2, seed=5, scale=0.1), target, 50.0, num_saves=4, steady_tol=steady_tol, throw=False)
    observed = sol.ts.size + 1  # the observables' ||∇L|| at t = 0 and at every save time
    assert len(calls) == int(sol.stats["gradient_evaluations"]) + observed
