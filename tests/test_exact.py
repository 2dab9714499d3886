"""Streamed exact sums: every chunking gives the same numbers as the reference sums over all states."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import reference as ref
from models import random_probs, rbm

import ebmflow

EXACT = {"rtol": 0, "atol": 1e-10}
# Central differences at h = 1e-5: truncation ~h² f''' ~ 1e-10, rounding ~1e-16/h ~ 1e-11.
FD = {"rtol": 0, "atol": 1e-7}
CHUNKS = (1, 8, 2**10)  # one state per chunk; 16 chunks of 8; one chunk larger than 2**7


@eqx.filter_jit
def _sums(model, target):
    out = {"nll": ebmflow.nll(model, target), "probs": ebmflow.probs(model)}
    for c in CHUNKS:
        value, grad = ebmflow.kl_and_grad(ebmflow.with_chunk_size(model, c), target)
        out[str(c)] = {
            "log_partition": ebmflow.log_partition(ebmflow.with_chunk_size(model, c)),
            "kl_and_grad": (value, ebmflow.flatten(grad)[0]),
        }
    return out


def test_every_chunk_size_gives_the_reference_sums():
    n = 7
    model = rbm(n, 3, seed=5)
    p = random_probs(n, seed=2)
    target = ebmflow.Target.from_probs(p)
    got = _sums(model, target)
    neg_e = ref.neg_energies(model)
    theta, unflatten = ebmflow.flatten(model)
    grad_fd = ref.central_difference(lambda t: ref.kl(ref.neg_energies(unflatten(t)), p), np.asarray(theta))
    np.testing.assert_allclose(got["nll"], ref.nll(neg_e, p), **EXACT)
    np.testing.assert_allclose(got["probs"], np.exp(ref.log_probs(neg_e)), **EXACT)
    for c in CHUNKS:
        g = got[str(c)]
        np.testing.assert_allclose(g["log_partition"], ref.log_partition(neg_e), **EXACT)
        np.testing.assert_allclose(g["kl_and_grad"][0], ref.kl(neg_e, p), **EXACT)
        np.testing.assert_allclose(g["kl_and_grad"][1], got[str(2**10)]["kl_and_grad"][1], **EXACT)
    np.testing.assert_allclose(got[str(2**10)]["kl_and_grad"][1], grad_fd, **FD)


def test_one_spin():
    """n = 1: plans with no low bits (chunk_size 1) and with no high bits (chunk_size 4)."""
    rng = np.random.default_rng(9)
    p = np.array([0.3, 0.7])
    target = ebmflow.Target.from_probs(p)
    for model in (ebmflow.Ising(rng.normal(size=1), np.zeros(0)), rbm(1, 2), ebmflow.WalshModel(rng.normal(size=1))):
        neg_e = ref.neg_energies(model)
        got = eqx.filter_jit(
            lambda m: [
                (ebmflow.neg_energies(chunked), ebmflow.kl(chunked, target))
                for chunked in (ebmflow.with_chunk_size(m, c) for c in (1, 4))
            ]
        )(model)
        for energies, kl in got:
            np.testing.assert_allclose(energies, neg_e, **EXACT)
            np.testing.assert_allclose(kl, ref.kl(neg_e, p), **EXACT)


def test_kl_is_zero_for_the_model_itself_and_nll_is_its_entropy():
    subsets = ebmflow.HigherOrderIsing.subsets_up_to(5, 3)
    model = ebmflow.HigherOrderIsing(5, subsets, 0.5 * np.random.default_rng(1).normal(size=len(subsets)))
    target = ebmflow.Target.from_model(model)
    p = np.exp(ref.log_probs(ref.neg_energies(model)))
    np.testing.assert_allclose(target.probs, p, **EXACT)
    np.testing.assert_allclose(eqx.filter_jit(ebmflow.kl)(model, target), 0, **EXACT)
    np.testing.assert_allclose(eqx.filter_jit(ebmflow.nll)(model, target), ref.entropy(p), **EXACT)


def test_log_partition_is_stable_for_large_energies():
    """No overflow from exp(-E): energies of several hundred nats still give the exact ln Z."""
    n = 4
    model = ebmflow.Ising(jnp.full(n, 150.0), jnp.zeros(n * (n - 1) // 2))
    # Z = (2 cosh 150)^n computed in logs: n * (150 + log1p(e^-300)).
    expected = n * (150.0 + np.log1p(np.exp(-300.0)))
    log_z = eqx.filter_jit(ebmflow.log_partition)(ebmflow.with_chunk_size(model, 2))
    np.testing.assert_allclose(log_z, expected, rtol=1e-14)
    lp = np.asarray(eqx.filter_jit(ebmflow.log_probs)(model))
    assert np.all(np.isfinite(lp)) and lp[0] == max(lp)
    # RBM hidden units at large pre-activations: ln 2cosh and softplus in their stable forms.
    for hidden in ("spin", "bernoulli"):
        rbm = ebmflow.RBM(jnp.full((2, n), 200.0), jnp.zeros(n), jnp.array([300.0, -300.0]), hidden)
        got = eqx.filter_jit(ebmflow.neg_energies)(rbm)
        pre = 300.0 + 200.0 * ref.states(n).sum(1), -300.0 + 200.0 * ref.states(n).sum(1)
        if hidden == "spin":  # ln 2cosh x = |x| + log1p(e^{-2|x|})
            f = [np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) for x in pre]
        else:  # softplus x = max(x, 0) + log1p(e^{-|x|})
            f = [np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))) for x in pre]
        np.testing.assert_allclose(got, f[0] + f[1], rtol=1e-14)


def test_a_target_cast_to_another_dtype_is_renormalised_there():
    """float32 rounding leaves Σ p - 1 ~ 1e-7; the cast target sums to 1 to its own rounding, back in float64 too."""
    p = np.random.default_rng(3).dirichlet(np.ones(2**10))
    t32 = ebmflow.Target.from_probs(p).astype(jnp.float32)
    back = t32.astype(jnp.float64)
    assert abs(float(jnp.sum(back.probs)) - 1) < 1e-14
    np.testing.assert_allclose(back.probs, p, rtol=2e-7)  # float32 rounding only
