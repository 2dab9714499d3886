"""The exact Hessian assembled from per-state gradients (`ebmflow._hessian`), `AbstractEnergy.curvature`,
and the derivative that the flow objective's gradient carries (`Objective.gradient`, a `jax.custom_jvp`).

References: plain autodiff of `ebmflow.kl` (forward over reverse through the log-sum-exp, a different
path from the covariance formula) and the NumPy closed forms of `reference_analysis`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_analysis as ra
from models import MODELS, make, random_probs, rbm

import ebmflow
from ebmflow._objective import Objective
from ebmflow._tree import cast_parameters
from ebmflow.energies import AbstractEnergy

# Two float64 evaluations of the same sums in a different order (Hessian entries are O(1)).
SAME_SUMS = {"rtol": 0, "atol": 1e-11}
N = 5


def _plain_hessian(model, probs, penalty):
    """Forward over reverse of the plain objective (what `ebmflow.hessian` computed before the covariance formula)."""
    objective = Objective(model)
    return jax.jit(jax.hessian(objective))(objective.theta0, probs, penalty)


@pytest.mark.parametrize("factory", MODELS)
def test_hessian_equals_autodiff_at_every_chunking(factory):
    """Every registry model (linear ones skip the curvature; the MLP and the user model use the default)."""
    model = make(factory, N)
    probs, penalty = jnp.asarray(random_probs(N, seed=1)), 0.2
    expected = _plain_hessian(model, probs, penalty)
    for chunk_size in (1, 4, None):  # 32 chunks, 8 chunks, one chunk
        objective = Objective(ebmflow.with_chunk_size(model, chunk_size))
        got = eqx.filter_jit(objective.hessian)(objective.theta0, probs, penalty)
        np.testing.assert_allclose(got, expected, **SAME_SUMS, err_msg=f"chunk_size={chunk_size}")


@pytest.mark.parametrize("hidden", ["spin", "bernoulli"])
def test_rbm_curvature_in_closed_form(hidden):
    """`RBM.curvature` = the generic default (autodiff of `energy`) = the NumPy formula, with signed weights."""
    model = rbm(5, 3, hidden, seed=3)
    r = ra.RBMRef.of(model)
    weights = np.random.default_rng(4).normal(size=2**5)
    s = jnp.asarray(ra.states(5))
    got = np.asarray(jax.jit(type(model).curvature)(model, jnp.asarray(weights), s))
    np.testing.assert_allclose(got, np.einsum("s,sij->ij", weights, r.second(r.theta)), rtol=0, atol=1e-12)
    default = jax.jit(AbstractEnergy.curvature)(model, jnp.asarray(weights), s)
    np.testing.assert_allclose(got, default, rtol=0, atol=1e-12)


def test_bernoulli_rbm_hessian_against_numpy():
    """`ebmflow.hessian` for softplus hidden units against the closed form and central differences in NumPy."""
    model = rbm(5, 3, "bernoulli", seed=5)
    target = ebmflow.Target.from_probs(random_probs(5, seed=6))
    r, p = ra.RBMRef.of(model), np.asarray(target.probs)
    h = np.asarray(ebmflow.hessian(model, target, penalty=0.1))
    np.testing.assert_allclose(h, ra.hessian(r, r.theta, p, penalty=0.1), rtol=0, atol=1e-10)
    np.testing.assert_allclose(h, ra.hessian_fd(r, r.theta, p, penalty=0.1), rtol=0, atol=1e-7)


def test_gradient_derivatives_in_every_argument_and_mode():
    """The custom derivative of `Objective.gradient` equals plain autodiff of the objective: forward and reverse,
    in θ, in the target's probabilities and in the penalty."""
    model = rbm(5, 3, seed=7)
    objective = Objective(ebmflow.with_chunk_size(model, 8))
    theta = objective.theta0
    probs, penalty = jnp.asarray(random_probs(5, seed=8)), jnp.asarray(0.3)
    plain = jax.grad(objective)
    v = jnp.asarray(np.random.default_rng(9).normal(size=theta.shape))

    forward = jax.jit(jax.jacfwd(objective.gradient, argnums=(0, 1, 2)))(theta, probs, penalty)
    expected = jax.jit(jax.jacfwd(plain, argnums=(0, 1, 2)))(theta, probs, penalty)
    for got, want, name in zip(forward, expected, ("theta", "probs", "penalty")):
        np.testing.assert_allclose(got, want, **SAME_SUMS, err_msg=name)

    reverse = jax.jit(jax.grad(lambda *a: objective.gradient(*a) @ v, argnums=(0, 1, 2)))(theta, probs, penalty)
    expected = jax.jit(jax.grad(lambda *a: plain(*a) @ v, argnums=(0, 1, 2)))(theta, probs, penalty)
    for got, want, name in zip(reverse, expected, ("theta", "probs", "penalty")):
        np.testing.assert_allclose(got, want, **SAME_SUMS, err_msg=name)


def test_default_flow_jacobian_is_the_assembled_hessian():
    """The default solver gets ``-∇²L`` directly; `Rodas4()` without it differentiates the gradient: same flow."""
    model = rbm(5, 4, seed=10, scale=0.1)
    target = ebmflow.Target.from_probs(random_probs(5, seed=11))
    direct = ebmflow.flow(model, target, 100.0, num_saves=5)
    differentiated = ebmflow.flow(model, target, 100.0, num_saves=5, solver=ebmflow.Rodas4())
    assert int(direct.stats["num_steps"]) == int(differentiated.stats["num_steps"])
    np.testing.assert_allclose(direct.kl, differentiated.kl, rtol=1e-9, atol=1e-13)


def test_hessian_refused_over_the_memory_budget():
    model = ebmflow.WalshModel(np.zeros(2**10 - 1))  # P = 1023: four P × P matrices are 33 MB
    target = ebmflow.Target.from_probs(np.full(2**10, 2.0**-10))
    ebmflow.set_memory_budget("16MiB")
    try:
        with pytest.raises(ebmflow.MemoryBudgetError, match=r"the Hessian for 1023 parameters needs an estimated"):
            ebmflow.hessian(model, target)
    finally:
        ebmflow.set_memory_budget(None)


def test_float32_hessian_and_flow_follow_float64():
    """float32 is a speed option: the assembled Hessian (raw second moments minus the mean's outer product)
    and a float32 flow stay within float32 rounding of float64."""
    model = rbm(5, 4, seed=12, scale=0.3)
    probs = random_probs(5, seed=13)
    model32 = cast_parameters(model, jnp.float32)
    h64 = ebmflow.hessian(model, ebmflow.Target.from_probs(probs))
    target32 = ebmflow.Target.from_probs(probs.astype(np.float32), normalize=True)
    h32 = ebmflow.hessian(model32, target32)
    assert h32.dtype == jnp.float32
    np.testing.assert_allclose(h32, h64, rtol=0, atol=1e-5 * float(jnp.abs(h64).max()))
    sol64 = ebmflow.flow(model, ebmflow.Target.from_probs(probs), 100.0, num_saves=5)
    sol32 = ebmflow.flow(model32, target32, 100.0, num_saves=5, rtol=1e-4, atol=1e-6)
    assert sol32.kl.dtype == jnp.float32 and sol32.ok
    np.testing.assert_allclose(sol32.kl, sol64.kl, rtol=0, atol=1e-5)
