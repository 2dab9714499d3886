"""The one-pass value-and-gradient (`kl_and_grad`), the hoisted low-bit features of energies, and the chunk plan.

`kl_and_grad` accumulates ``<∂(-E)>_θ`` and ``<∂(-E)>_D`` in the same pass as the
value, by `jax.vjp` per chunk; `kl` and friends stay plain autodiff. Both must give
the reference numbers at every chunking, in float64 and, within float32 rounding, in float32.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from models import MODELS, make, random_probs, rbm

import ebmflow
from ebmflow._objective import Objective
from ebmflow.space._abstract import DEFAULT_CHUNK_SIZE

EXACT = {"rtol": 0, "atol": 1e-10}
# Two float64 evaluations of the same sums, added in a different order: they differ by rounding (~1e-15).
SAME_SUMS = {"rtol": 0, "atol": 1e-12}
N = 6


def rbm_kl_gradient(model, p_data) -> np.ndarray:
    """``∇KL = Σ_s (p_θ(s) - p_D(s)) ∂_θ(-E(s))`` with the RBM's derivatives written out, in `flatten` order."""
    w, b = np.asarray(model.weights, np.float64), np.asarray(model.hidden_bias, np.float64)
    s = ref.states(model.n)
    x = s @ w.T + b  # (states, hidden)
    f_prime = np.tanh(x) if model.hidden == "spin" else 1 / (1 + np.exp(-x))
    diff = np.exp(ref.log_probs(ref.neg_energies(model))) - p_data
    grad = ebmflow.RBM(np.einsum("s,sa,sj->aj", diff, f_prime, s), diff @ s, diff @ f_prime, model.hidden)
    return np.asarray(ebmflow.flatten(grad)[0])


@eqx.filter_jit
def _both_ways(model, target, chunk_sizes):
    """``kl_and_grad`` and ``filter_value_and_grad(kl)`` (flattened gradients) at each chunk size."""
    out = []
    for c in chunk_sizes:
        fast = ebmflow.kl_and_grad(ebmflow.with_chunk_size(model, c), target)
        plain = eqx.filter_value_and_grad(lambda m: ebmflow.kl(m, target))(ebmflow.with_chunk_size(model, c))
        out.append((fast[0], ebmflow.flatten(fast[1])[0], plain[0], ebmflow.flatten(plain[1])[0]))
    return out


@pytest.mark.parametrize("model_factory", MODELS)
def test_kl_and_grad_equals_autodiff_of_kl(model_factory):
    """Every registry model, 16 chunks of 4 states.

    test_exact covers one state per chunk, the contract tests one chunk.
    """
    model = make(model_factory, n=N)
    p = random_probs(N, seed=6)
    [(value, grad, plain_value, plain_grad)] = _both_ways(model, ebmflow.Target.from_probs(p), (4,))
    np.testing.assert_allclose(value, ref.kl(ref.neg_energies(model), p), **EXACT)
    np.testing.assert_allclose(value, plain_value, **SAME_SUMS)
    np.testing.assert_allclose(grad, plain_grad, **SAME_SUMS)


@pytest.mark.parametrize("hidden", ["spin", "bernoulli"])
def test_kl_and_grad_matches_the_rbm_gradient_formula_at_every_chunking(hidden):
    """Against ``Σ (p_θ - p_D) ∂(-E)``, ``∂(-E)/∂W_aj = f'(x_a) s_j`` written out in NumPy (n = 7, 3 hidden units).

    Chunks of one state (no low bits), of 8 states (16 chunks) and one chunk (the default).
    """
    model = rbm(7, 3, hidden, seed=2)
    p = random_probs(7, seed=3)
    expected = rbm_kl_gradient(model, p)
    chunk_sizes = (1, 8, None)
    for c, (value, grad, plain_value, plain_grad) in zip(
        chunk_sizes, _both_ways(model, ebmflow.Target.from_probs(p), chunk_sizes)
    ):
        np.testing.assert_allclose(value, ref.kl(ref.neg_energies(model), p), **EXACT, err_msg=f"chunk_size={c}")
        np.testing.assert_allclose(grad, expected, **EXACT, err_msg=f"chunk_size={c}")
        np.testing.assert_allclose(value, plain_value, **SAME_SUMS, err_msg=f"chunk_size={c}")
        np.testing.assert_allclose(grad, plain_grad, **SAME_SUMS, err_msg=f"chunk_size={c}")


def test_forward_mode_through_the_one_pass_gradient_gives_the_hessian():
    """`jax.jacfwd` of the flow objective's one-pass gradient, as the integrator uses it, is the Hessian."""
    model = rbm(6, 2, seed=4)
    target = ebmflow.Target.from_probs(random_probs(6, seed=5))
    theta, unflatten = ebmflow.flatten(model)
    objective = Objective(ebmflow.with_chunk_size(model, 8))  # 8 chunks
    probs, penalty = target.probs, 0.1

    def gradient(t):
        return objective.gradient(t, probs, penalty)

    grad, hessian = jax.jit(lambda t: (gradient(t), jax.jacfwd(gradient)(t)))(theta)
    expected_grad = ebmflow.flatten(eqx.filter_jit(ebmflow.kl_and_grad)(model, target)[1])[0] + penalty * theta
    expected_hessian = jax.jit(jax.hessian(lambda t: ebmflow.kl(unflatten(t), target)))(theta)
    np.testing.assert_allclose(grad, expected_grad, **SAME_SUMS)
    np.testing.assert_allclose(hessian, expected_hessian + penalty * np.eye(theta.shape[0]), **SAME_SUMS)


def test_kl_and_grad_vmaps_and_does_not_retrace():
    models = [rbm(5, 3, seed=seed) for seed in (0, 1, 2)]
    target = ebmflow.Target.from_probs(random_probs(5, seed=1))
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *models)
    f = eqx.filter_jit(eqx.debug.assert_max_traces(ebmflow.kl_and_grad, max_traces=1))
    values, grads = eqx.filter_vmap(f, in_axes=(eqx.if_array(0), None))(stacked, target)
    for i, model in enumerate(models):
        value, grad = f(model, target)  # a second trace (new parameter values, same shapes) would raise
        np.testing.assert_allclose(values[i], value, **SAME_SUMS)
        member = jax.tree_util.tree_map(lambda x, i=i: x[i], grads)
        np.testing.assert_allclose(ebmflow.flatten(member)[0], ebmflow.flatten(grad)[0], **SAME_SUMS)


@pytest.mark.parametrize("chunk_size", [2, DEFAULT_CHUNK_SIZE])
def test_float32_value_and_gradient_at_n_14(chunk_size):
    """A float32 model (14 visible, 14 hidden) against the same parameters in float64, over 8192 or 16 chunks.

    Float32 rounds each term to ~6e-8 relative. The value's sums over chunks are compensated, so
    thousands of chunks do not add to its error; the gradient's running sums are not, and their
    rounding grows with the number of chunks (a few 1e-6 relative at 8192 chunks).
    """
    n = 14
    m32 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), rbm(n, n, seed=3, scale=0.3, bias_scale=0.3))
    m64 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), m32)
    p = random_probs(n, seed=4).astype(np.float32)
    t32 = ebmflow.Target.from_probs(p, normalize=True)
    t64 = ebmflow.Target.from_probs(np.asarray(t32.probs, np.float64))
    value, grad = eqx.filter_jit(ebmflow.kl_and_grad)(ebmflow.with_chunk_size(m32, chunk_size), t32)
    kl = eqx.filter_jit(ebmflow.kl)(ebmflow.with_chunk_size(m32, chunk_size), t32)
    assert value.dtype == kl.dtype == ebmflow.flatten(grad)[0].dtype == jnp.float32
    value64, grad64 = eqx.filter_jit(ebmflow.kl_and_grad)(m64, t64)
    grad, grad64 = ebmflow.flatten(grad)[0], ebmflow.flatten(grad64)[0]
    np.testing.assert_allclose(value, value64, rtol=2e-6)
    np.testing.assert_allclose(kl, value64, rtol=2e-6)
    assert float(jnp.max(jnp.abs(grad - grad64))) < 2e-5 * float(jnp.max(jnp.abs(grad64)))


# ----------------------------------------------------------------------------- hoisted low-bit features


@eqx.filter_jit
def _every_split(model):
    return [ebmflow.neg_energies(ebmflow.with_chunk_size(model, 2**k)) for k in range(model.n + 1)]


@pytest.mark.parametrize("model_factory", MODELS)
def test_every_split_of_the_sites_gives_the_energies(model_factory):
    """`lo_features` / `neg_energy_chunk` for every number of low bits ``k = 0..n`` equal the reference ``-E``."""
    model = make(model_factory)
    expected = ref.neg_energies(model)
    for k, neg_e in enumerate(_every_split(model)):
        np.testing.assert_allclose(neg_e, expected, **EXACT, err_msg=f"{k} low bits")


def test_default_pair_is_the_vmapped_energy():
    """The `AbstractEnergy` defaults: features are the low-bit spins; a chunk concatenates them with the high bits."""
    model = rbm(5, 2, seed=8)
    s_lo, s_hi = ebmflow.all_states(2), jnp.array([1.0, -1.0, -1.0])
    features = ebmflow.AbstractEnergy.lo_features(model, s_lo)
    np.testing.assert_array_equal(features, s_lo)
    got = ebmflow.AbstractEnergy.neg_energy_chunk(model, features, s_hi)
    expected = [ref.neg_energy(model, np.concatenate([np.asarray(lo), np.asarray(s_hi)])) for lo in s_lo]
    np.testing.assert_allclose(got, expected, **EXACT)
    np.testing.assert_allclose(model.neg_energy_chunk(model.lo_features(s_lo), s_hi), expected, **EXACT)


# ----------------------------------------------------------------------------- chunk plan


@pytest.mark.parametrize(
    "n, chunk_size, n_lo",
    [(20, None, 10), (20, 1000, 9), (20, 1024, 10), (20, 1, 0), (5, None, 5), (5, 2**20, 5), (7, 3, 1), (1, 2, 1)],
)
def test_chunk_is_one_high_bit_state_and_all_low_bit_states(n, chunk_size, n_lo):
    """``chunk_size`` states rounded down to a power of two, at most ``2**n``.

    That is ``n_lo`` low bits and ``2**(n - n_lo)`` chunks.
    """
    plan = ebmflow.Spins(n, chunk_size)
    assert (plan.n_lo, plan.n_hi, plan.n_chunks, plan.chunk_states) == (n_lo, n - n_lo, 2 ** (n - n_lo), 2**n_lo)
