"""Contract of every energy model (the registry in models.py) and model-specific formulas."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from models import CHUNK_SIZES, MODELS, factory, make, param_dtype, random_probs

import ebmflow

EXACT = {"rtol": 0, "atol": 1e-10}  # exact algebra in float64
# Central differences at h = 1e-5: truncation ~h² f''' ~ 1e-10, rounding ~1e-16/h ~ 1e-11.
FD = {"rtol": 0, "atol": 1e-7}
# float32 results against the float64 reference: rounding ~1e-7 relative, times sums of ~2**5 terms.
F32 = {"rtol": 1e-5, "atol": 2e-5}


# ----------------------------------------------------------------------------- contract over the registry


def test_block_evaluation_agrees_with_energy(case):
    """`lo_features`/`neg_energy_chunk` (through `neg_energies`, any chunking) equal the vmapped `energy`."""
    for chunk_size, neg_e in zip(CHUNK_SIZES, case.got["neg_energies"]):
        np.testing.assert_allclose(neg_e, -case.got["energy"], **EXACT, err_msg=f"chunk_size={chunk_size}")


def test_energy_matches_reference_formula(case):
    np.testing.assert_allclose(-case.got["energy"], case.neg_e, **EXACT)


def test_log_partition_log_probs_and_kl(case):
    np.testing.assert_allclose(case.got["log_partition"], ref.log_partition(case.neg_e), **EXACT)
    np.testing.assert_allclose(case.got["log_probs"], ref.log_probs(case.neg_e), **EXACT)
    np.testing.assert_allclose(case.got["kl_and_grad"][0], ref.kl(case.neg_e, case.p_data), **EXACT)
    assert case.got["kl_and_grad"][0] > 0


def test_kl_gradient_matches_finite_differences(case):
    grad_fd, _ = case.finite_differences
    assert case.got["kl_and_grad"][1].shape == case.theta.shape
    np.testing.assert_allclose(case.got["kl_and_grad"][1], grad_fd, **FD)


def test_jit_equals_eager(case):
    eager = ebmflow.neg_energies(ebmflow.with_chunk_size(case.model, 8))
    np.testing.assert_allclose(eager, case.got["neg_energies"][1], **EXACT)
    np.testing.assert_allclose(ebmflow.log_partition(case.model), case.got["log_partition"], **EXACT)


def test_jit_does_not_retrace_for_new_parameter_values(case):
    other = make(case.factory, seed=7)
    got = case.bundle(other, case.target)  # assert_max_traces(max_traces=1) raises on a second trace
    np.testing.assert_allclose(got["kl_and_grad"][0], ref.kl(ref.neg_energies(other), case.p_data), **EXACT)
    np.testing.assert_allclose(got["couplings"], ref.couplings_from_neg_energies(ref.neg_energies(other)), **EXACT)


def test_vmap_over_models_equals_loop(case):
    members = [make(case.factory, seed=seed) for seed in (3, 4, 5)]
    _, static = eqx.partition(members[0], eqx.is_array)
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *[eqx.filter(m, eqx.is_array) for m in members])
    got = eqx.filter_jit(eqx.filter_vmap(ebmflow.log_partition))(eqx.combine(stacked, static))
    for i, member in enumerate(members):
        np.testing.assert_allclose(got[i], ref.log_partition(ref.neg_energies(member)), **EXACT)


@eqx.filter_jit
def _float32_bundle(model, target):
    model = ebmflow.with_chunk_size(model, 8)
    return ebmflow.neg_energies(model), ebmflow.kl(model, target)


@pytest.mark.parametrize("model_factory", MODELS)
def test_float32_model_gives_float32_outputs(model_factory):
    """float32 is a speed option: a float32 model computes in float32, also against a float64 target."""
    model = make(model_factory, dtype=jnp.float32)
    assert param_dtype(model) == jnp.float32
    p = random_probs(5, seed=1)
    neg_e, kl = _float32_bundle(model, ebmflow.Target.from_probs(p))  # the target is float64
    assert neg_e.dtype == jnp.float32
    reference_neg_e = ref.neg_energies(model)  # the float32 parameters, evaluated in float64
    np.testing.assert_allclose(neg_e, reference_neg_e, **F32)
    np.testing.assert_allclose(kl, ref.kl(reference_neg_e, p), **F32)


def test_float32_sums_gradients_and_couplings():
    """The streamed sums, their gradient and the couplings stay float32 (the model-independent code)."""
    model = make(factory("rbm-spin"), dtype=jnp.float32)
    p = random_probs(5, seed=1)
    target = ebmflow.Target.from_probs(p.astype(np.float32))
    value, grad, log_z, j = eqx.filter_jit(
        lambda m, t: (
            *ebmflow.kl_and_grad(ebmflow.with_chunk_size(m, 8), t), ebmflow.log_partition(m), ebmflow.couplings(m)
        )
    )(model, target)
    theta = ebmflow.flatten(grad)[0]
    assert value.dtype == theta.dtype == log_z.dtype == j.dtype == jnp.float32
    neg_e = ref.neg_energies(model)
    np.testing.assert_allclose(value, ref.kl(neg_e, np.asarray(target.probs, np.float64)), **F32)
    np.testing.assert_allclose(log_z, ref.log_partition(neg_e), **F32)
    np.testing.assert_allclose(j[1:], ref.couplings_from_neg_energies(neg_e)[1:], **F32)


# ----------------------------------------------------------------------------- model-specific


def test_ising_parameter_order_is_triu():
    n = 4
    i, j = np.triu_indices(n, 1)
    couplings = np.arange(1.0, 7.0)
    model = ebmflow.Ising(np.zeros(n), couplings)
    matrix = np.zeros((n, n))
    matrix[i, j] = couplings
    np.testing.assert_array_equal(np.asarray(model.matrix), matrix + matrix.T)
    again = ebmflow.Ising.from_matrix(np.ones(n), matrix + matrix.T)
    np.testing.assert_array_equal(np.asarray(again.couplings), couplings)
    s = ref.state(11, n)
    expected = ref.ising_neg_energy(np.zeros(n), couplings, s)
    assert float(-model.energy(jnp.asarray(s))) == pytest.approx(expected, abs=1e-12)


def test_higher_order_ising_subsets_up_to():
    n = 5
    expected = [sum(1 << i for i in c) for k in (1, 2, 3) for c in itertools.combinations(range(n), k)]
    assert ebmflow.HigherOrderIsing.subsets_up_to(n, 3) == tuple(expected)
    model = make(lambda key, n, dtype: ebmflow.HigherOrderIsing.init(key, n, max_order=3, dtype=dtype))
    assert model.subsets == tuple(expected) and model.couplings.shape == (5 + 10 + 10,)


def _mlp_7(key, n, dtype):
    return ebmflow.MLPEnergy.init(key, n, (7,), "tanh", 2.0, dtype)


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "silu", "softplus", "sigmoid"])
def test_mlp_activations_match_reference(activation):
    model = ebmflow.MLPEnergy(make(_mlp_7).layers, activation)
    got = eqx.filter_jit(lambda m: -jax.vmap(m.energy)(ebmflow.all_states(5)))(model)
    np.testing.assert_allclose(got, ref.neg_energies(model), **EXACT)


def test_rbm_from_bernoulli_preserves_probabilities():
    rng = np.random.default_rng(4)
    n, m = 5, 3
    w, b, c = rng.normal(0, 1, (m, n)), rng.normal(0, 0.5, n), rng.normal(0, 0.5, m)
    rbm = ebmflow.RBM.from_bernoulli(w, b, c)
    assert rbm.hidden == "spin"
    expected = ref.bernoulli_rbm_log_probs(w, b, c)
    np.testing.assert_allclose(eqx.filter_jit(ebmflow.log_probs)(rbm), expected, **EXACT)
    # -E itself agrees up to one additive constant.
    diff = ref.neg_energies(rbm) - (expected - expected[0])
    np.testing.assert_allclose(diff - diff[0], 0, **EXACT)


class _ChainN(ebmflow.AbstractEnergy):
    """The short form over spins: a static ``n`` instead of a ``space`` field."""

    n: int = eqx.field(static=True)
    theta: jax.Array

    def energy(self, s):
        return -self.theta * jnp.sum(s[:-1] * s[1:])


def test_an_energy_may_declare_n_instead_of_a_space():
    model = _ChainN(4, jnp.asarray(0.7))
    assert model.space == ebmflow.Spins(4) and model.n == 4
    p = random_probs(4, seed=3)
    neg_e = np.array([0.7 * np.sum(s[:-1] * s[1:]) for s in ref.states(4)])
    np.testing.assert_allclose(ebmflow.kl(model, ebmflow.Target.from_probs(p)), ref.kl(neg_e, p), **EXACT)
    with pytest.raises(TypeError, match="derives its space from `n`; declare a field `space`"):
        ebmflow.with_chunk_size(model, 2)
