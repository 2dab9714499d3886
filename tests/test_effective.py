"""The effective model: couplings, moments, coupling Jacobian and tangent kernel (THEORY §2-3, §7)."""

import itertools

import equinox as eqx
import numpy as np
import pytest
import reference as ref
from models import factory, make, random_probs, rbm

import ebmflow

EXACT = {"rtol": 0, "atol": 1e-10}
# Central differences at h = 1e-5: truncation ~h² f''' ~ 1e-10, rounding ~1e-16/h ~ 1e-11.
FD = {"rtol": 0, "atol": 1e-7}

# Eager calls compile every primitive separately; numerical checks go through one compiled call.
couplings = eqx.filter_jit(ebmflow.couplings)
coupling_jacobian = eqx.filter_jit(ebmflow.coupling_jacobian)
log_probs = eqx.filter_jit(ebmflow.log_probs)
kl = eqx.filter_jit(ebmflow.kl)


# ----------------------------------------------------------------------------- contract over the registry


def test_couplings_are_the_hadamard_transform_of_neg_energy(case):
    j = ref.couplings_from_neg_energies(case.neg_e)
    np.testing.assert_allclose(case.got["couplings"][1:], j[1:], **EXACT)
    for s in (1, 6, 31):
        assert j[s] == pytest.approx(ref.couplings_by_sum(case.neg_e, s), abs=1e-12)


def test_couplings_reproduce_log_probabilities(case):
    """The full generalised Ising model with J(θ) has the same distribution as the model."""
    walsh = ebmflow.WalshModel(case.got["couplings"][1:])
    np.testing.assert_allclose(log_probs(walsh), ref.log_probs(case.neg_e), **EXACT)


def test_coupling_jacobian_matches_finite_differences(case):
    _, jac_fd = case.finite_differences
    assert case.got["jacobian"].shape == (2**5 - 1, case.theta.size)
    np.testing.assert_allclose(case.got["jacobian"], jac_fd, **FD)


def test_gradient_is_jacobian_transpose_times_moment_mismatch(case):
    """∇θ KL = Gᵀ (m^θ - m^D) over S ≠ ∅ (THEORY §3): ebmflow's G and gradient, reference moments."""
    mismatch = ref.moments(np.exp(ref.log_probs(case.neg_e))) - ref.moments(case.p_data)
    np.testing.assert_allclose(case.got["jacobian"].T @ mismatch[1:], case.got["kl_and_grad"][1], **EXACT)
    # and with the finite-difference G of the reference couplings:
    _, jac_fd = case.finite_differences
    np.testing.assert_allclose(jac_fd.T @ mismatch[1:], case.got["kl_and_grad"][1], **FD)


def test_moments():
    model = rbm(5, 3, seed=8)
    target = ebmflow.Target.from_probs(random_probs(5, seed=8))
    m_model, m_target = eqx.filter_jit(lambda m, t: (ebmflow.moments(m), ebmflow.moments(t)))(model, target)
    np.testing.assert_allclose(m_model, ref.moments(np.exp(ref.log_probs(ref.neg_energies(model)))), **EXACT)
    np.testing.assert_allclose(m_target, ref.moments(target.probs), **EXACT)
    assert m_model[0] == pytest.approx(1, abs=1e-12) and m_target[0] == pytest.approx(1, abs=1e-12)
    # m_S = <χ_S> as a loop over states for a few subsets
    p = np.exp(ref.log_probs(ref.neg_energies(model)))
    for s in (1, 6, 21, 31):
        expected = sum(p[b] * ref.parity(ref.state(b, 5), s) for b in range(32))
        assert m_model[s] == pytest.approx(expected, abs=1e-12)


# Two models only: the kernel's code does not depend on the model.
@pytest.mark.parametrize("model_id", ["rbm-spin", "mlp"])
def test_tangent_kernel(model_id):
    model = make(factory(model_id))
    kernel, g = eqx.filter_jit(lambda m: (ebmflow.tangent_kernel(m), ebmflow.coupling_jacobian(m)))(model)
    np.testing.assert_allclose(kernel, g @ g.T, **EXACT)
    theta, unflatten = ebmflow.flatten(model)
    jac_fd = ref.central_difference(
        lambda t: ref.couplings_from_neg_energies(ref.neg_energies(unflatten(t)))[1:], np.asarray(theta)
    )
    # K sums P products of finite differences, each off by ~1e-10: loosened to 1e-7.
    np.testing.assert_allclose(kernel, jac_fd @ jac_fd.T, rtol=0, atol=1e-7)
    assert np.linalg.eigvalsh(np.asarray(kernel)).min() > -1e-10


# ----------------------------------------------------------------------------- specific models and targets


def test_walsh_model_couplings_are_its_parameters():
    n = 5
    model = ebmflow.WalshModel(0.5 * np.random.default_rng(2).normal(size=2**n - 1))
    np.testing.assert_allclose(couplings(model)[1:], model.couplings, **EXACT)
    np.testing.assert_allclose(coupling_jacobian(model), np.eye(2**n - 1), **EXACT)


def test_target_couplings_round_trip():
    """J* = 2^-n H ln p_D, and the Walsh model with J* reproduces p_D; couplings -> log p -> couplings."""
    n = 6
    p = random_probs(n, seed=n)
    target = ebmflow.Target.from_probs(p)
    j = np.asarray(couplings(target))
    np.testing.assert_allclose(j, ref.hadamard(n) @ np.log(p) / 2**n, **EXACT)
    model = ebmflow.WalshModel(j[1:])
    np.testing.assert_allclose(log_probs(model), np.log(p), **EXACT)
    np.testing.assert_allclose(kl(model, target), 0, **EXACT)
    np.testing.assert_allclose(couplings(model)[1:], j[1:], **EXACT)


@pytest.mark.parametrize(("n", "hidden"), [(5, "spin"), (6, "spin"), (6, "bernoulli")])
def test_rbm_couplings_closed_form(n, hidden):
    """THEORY §7: J_S by the exact sum over τ ∈ {±1}^S and over the spins outside S, for |S| = 1, 2, 3."""
    model = rbm(n, 3, hidden, seed=n, scale=0.8, bias_scale=0.5)
    w, a, b = (np.asarray(x) for x in (model.weights, model.visible_bias, model.hidden_bias))
    # ln 2cosh = ln cosh + ln 2: the constant only moves J_∅, so THEORY's ln cosh applies to the spin RBM.
    f = ref.lncosh if hidden == "spin" else ref.softplus
    j = np.asarray(couplings(model))
    for k in (1, 2, 3):
        for combo in itertools.combinations(range(n), k):
            s = sum(1 << i for i in combo)
            assert j[s] == pytest.approx(ref.rbm_coupling_closed_form(w, a, b, s, f), abs=1e-10), combo


def test_from_bernoulli_matches_theory_parameters():
    """THEORY §7: w = W/4, η_j = b_j/2 + Σ_a W_aj/4, θ_a = c_a/2 + Σ_j W_aj/4 (written out as loops)."""
    rng = np.random.default_rng(6)
    m, n = 3, 4
    big_w, b, c = rng.normal(size=(m, n)), rng.normal(size=n), rng.normal(size=m)
    rbm = ebmflow.RBM.from_bernoulli(big_w, b, c)
    eta = [b[j] / 2 + sum(big_w[a, j] for a in range(m)) / 4 for j in range(n)]
    theta = [c[a] / 2 + sum(big_w[a, j] for j in range(n)) / 4 for a in range(m)]
    np.testing.assert_allclose(rbm.weights, big_w / 4, **EXACT)
    np.testing.assert_allclose(rbm.visible_bias, eta, **EXACT)
    np.testing.assert_allclose(rbm.hidden_bias, theta, **EXACT)


def test_flatten_round_trip():
    model = rbm(4, 2)
    theta, unflatten = ebmflow.flatten(model)
    assert theta.shape == (2 * 4 + 4 + 2,)
    again = unflatten(theta)
    for name in ("weights", "visible_bias", "hidden_bias"):
        np.testing.assert_array_equal(getattr(again, name), getattr(model, name))
    assert again.hidden == model.hidden and again.n == model.n
    moved = unflatten(theta + 1.0)
    np.testing.assert_array_equal(moved.weights, np.asarray(model.weights) + 1.0)
