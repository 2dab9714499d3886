"""Bad input through the public API: a clear error naming the problem (or a result code saying it), never a raw
traceback from inside JAX, Equinox, diffrax, NumPy or zipfile, nor a misleading message."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ebmflow as ef
from ebmflow.io import save

N = 4


def _target(n=N, field=0.0):
    """A product target with magnetisation ``tanh(field)`` per spin (uniform for ``field = 0``)."""
    p = np.exp(field * np.asarray(ef.all_states(n)).sum(1))
    return ef.Target.from_probs(p / p.sum())


def _ising(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return ef.Ising(0.3 * rng.normal(size=n), 0.3 * rng.normal(size=n * (n - 1) // 2))


def _rbm(n=N, n_hidden=2, seed=0):
    rng = np.random.default_rng(seed)
    return ef.RBM(0.3 * rng.normal(size=(n_hidden, n)), 0.3 * rng.normal(size=n), 0.3 * rng.normal(size=n_hidden))


class VectorEnergy(ef.AbstractEnergy):
    """A user energy that forgets to sum: one energy per spin instead of a scalar."""

    space: ef.Spins
    theta: jax.Array

    def energy(self, s):
        return -self.theta * s


class NanEnergy(ef.AbstractEnergy):
    """A user energy that is NaN at every state."""

    space: ef.Spins
    theta: jax.Array

    def energy(self, s):
        return jnp.nan * s.sum() * self.theta


class CliffEnergy(ef.AbstractEnergy):
    """Finite for ``theta < 0.5`` and NaN beyond: a flow towards magnetised targets runs into the NaN region."""

    space: ef.Spins
    theta: jax.Array

    def energy(self, s):
        return jnp.where(self.theta < 0.5, -self.theta * s.sum(), jnp.nan)


# ----------------------------------------------------------------------------- 1-2: user energies


def test_user_energy_returning_a_vector_names_the_class_and_the_shape():
    model = VectorEnergy(ef.Spins(N), jnp.asarray(0.5))
    with pytest.raises(ValueError, match=r"VectorEnergy\.energy must return a real scalar for one state of shape "
                                         r"\(4,\); it returns shape \(4,\)"):
        ef.kl(model, _target())


def test_user_energy_returning_nan_is_an_error():
    model = NanEnergy(ef.Spins(N), jnp.asarray(0.5))
    with pytest.raises(ValueError, match=r"kl of NanEnergy is NaN or infinite: its energy is not finite"):
        ef.kl(model, _target())
    with pytest.raises(ValueError, match=r"log_partition of NanEnergy is NaN or infinite"):
        ef.log_partition(model)


def test_user_energy_returning_nan_inside_jit_is_flagged_at_run_time():
    model, target = NanEnergy(ef.Spins(N), jnp.asarray(0.5)), _target()
    # eqx.filter_jit, the model passed: Equinox's own runtime error
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"kl of NanEnergy is NaN or infinite"):
        eqx.filter_jit(ef.kl)(model, target)
    # jax.jit, the model closed over, or built from a traced parameter: JAX's runtime error carries the message
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"kl of NanEnergy is NaN or infinite"):
        jax.jit(lambda: ef.kl(model, target))()
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"log_partition of NanEnergy is NaN or infinite"):
        jax.jit(lambda theta: ef.log_partition(NanEnergy(ef.Spins(N), theta)))(jnp.asarray(0.5))


# ----------------------------------------------------------------------------- 3-5: flow and train options


def test_non_finite_save_times_name_the_entry():
    model, target = _ising(), _target(3)
    with pytest.raises(ValueError, match=r"ts must be increasing save times in \[0, t1=10\.0\]; ts\[1\] = nan is "
                                         r"not finite"):
        ef.flow(model, target, 10.0, ts=[0, np.nan, 10])
    with pytest.raises(ValueError, match=r"ts\[2\] = inf is not finite"):
        ef.flow(model, target, 10.0, ts=[0, 1, np.inf])


def test_save_times_one_ulp_past_t1_are_clipped_and_beyond_are_refused():
    model, target, t1 = _ising(), _target(3), 2000.0
    ts = np.logspace(-2, np.log10(t1), 150)
    assert ts[-1] > t1  # np.logspace overshoots by an ulp
    sol = ef.flow(model, target, t1, ts=ts)
    assert bool(sol.ok) and float(sol.ts[-1]) == t1 and float(sol.t_final) == t1
    beyond = ts.copy()
    beyond[-1] = 2001.0
    with pytest.raises(ValueError, match=r"ts\[149\] = 2001\.0 is outside \[0, t1\]$") as error:
        ef.flow(model, target, t1, ts=beyond)
    assert len(str(error.value)) < 200  # the offending entry, not the whole array


@pytest.mark.parametrize("penalty", [np.nan, -1.0, np.inf])
def test_bad_penalty(penalty):
    model, target = _ising(), _target(3)
    match = rf"penalty must be a finite number >= 0; got {penalty!r}"
    with pytest.raises(ValueError, match=match):
        ef.flow(model, target, 1.0, penalty=penalty)
    with pytest.raises(ValueError, match=match):
        ef.train(model, target, optax.sgd(0.1), 10, penalty=penalty)


def test_flow_into_a_non_finite_gradient_says_non_finite_not_max_steps():
    """Every step across the NaN boundary is rejected; the flow stops at it and says why."""
    target = _target(3, field=1.0)
    model = CliffEnergy(ef.Spins(3), jnp.asarray(0.0))
    sol = ef.flow(model, target, 10.0, num_saves=5, max_steps=1000, throw=False)
    assert sol.result == ef.RESULTS.nonfinite and not bool(sol.ok)
    assert "NaN or infinite" in sol.message and "max_steps" not in sol.message
    assert 0 < float(sol.t_final) < 10.0
    with pytest.raises(RuntimeError, match=r"parameters or the gradient became NaN or infinite"):
        ef.flow(model, target, 10.0, num_saves=5, max_steps=1000)
    batch = ef.flow_batch(CliffEnergy(ef.Spins(3), jnp.asarray([0.0, 0.1])), target, 10.0, num_saves=5,
                          max_steps=1000)
    assert [int(c) for c in np.asarray(batch.result._value)] == [ef.RESULTS.nonfinite._value] * 2
    with pytest.raises(RuntimeError, match=r"parameters or the gradient became NaN or infinite"):
        ef.train(model, target, optax.sgd(1.0), 20, num_saves=5)


@pytest.mark.parametrize("max_steps", [0, -3, 2.5])
def test_bad_max_steps(max_steps):
    with pytest.raises(ValueError, match=rf"max_steps must be a positive int; got {max_steps!r}"):
        ef.flow(_ising(), _target(3), 1.0, max_steps=max_steps)


def test_solver_and_optimizer_given_by_name_are_refused():
    model, target = _ising(), _target(3)
    with pytest.raises(TypeError, match=r"solver must be a diffrax solver such as ebmflow\.Rodas4\(\) .*got 'rodas4'"):
        ef.flow(model, target, 1.0, solver="rodas4")
    for name in ("adam", "not-an-optimizer"):
        with pytest.raises(TypeError, match=rf"optimizer must be an optax optimiser such as optax\.adam\(1e-2\) .*"
                                            rf"got '{name}'"):
            ef.train(model, target, name, 10)


# ----------------------------------------------------------------------------- 6-8: targets, environment, dtypes


def test_normalising_zero_probabilities():
    with pytest.raises(ValueError, match=r"cannot normalise target probs that sum to 0\.0"):
        ef.Target.from_probs(np.zeros(16), normalize=True)


def test_unreadable_memory_budget_in_the_environment(monkeypatch):
    monkeypatch.setenv("EBMFLOW_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match=r"cannot read the environment variable EBMFLOW_MEMORY_BUDGET 'lots'"):
        ef.kl(_rbm(), _target())


def test_probabilities_that_are_not_real_numbers():
    for probs, kind in ((np.array(["a"] * 16), "ndarray of <U1"), (["a"] * 16, "list of <U1"),
                        (np.full(16, 1 / 16, complex), "ndarray of complex128")):
        with pytest.raises(TypeError, match=rf"target probs must be real numbers; got {kind}"):
            ef.Target.from_probs(probs, normalize=True)
    with pytest.raises(TypeError, match=r"target probs must be real numbers; got ndarray of <U1"):
        ef.Target(np.array(["a"] * 16))


def test_parameters_of_mixed_or_half_precision():
    rbm, target = _rbm(), _target()
    mixed = eqx.tree_at(lambda m: m.weights, rbm, rbm.weights.astype(jnp.float32))
    with pytest.raises(TypeError, match=r"RBM's parameters must all be float32 or all float64 .*got float32, float64: "
                                        r"cast them, e.g\. ebmflow\.cast_parameters"):
        ef.kl(mixed, target)
    with pytest.raises(TypeError, match=r"got float16: cast them, e\.g\. ebmflow\.cast_parameters"):
        ef.log_partition(ef.cast_parameters(rbm, jnp.float16))
    with pytest.raises(TypeError, match=r"got float32, float64"):
        ef.flow(mixed, target, 1.0)


# ----------------------------------------------------------------------------- 10: batches


def test_batch_sizes_that_do_not_fit():
    models = eqx.filter_vmap(lambda k: ef.RBM.init(k, N, 2, scale=0.1))(jax.random.split(jax.random.PRNGKey(0), 3))
    targets = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), _target(field=0.1), _target(field=0.2))
    with pytest.raises(ValueError, match=r"flow_batch got 3 models but a batch of 2 targets; give one target, or "
                                         r"one per model"):
        ef.flow_batch(models, targets, 1.0)
    with pytest.raises(ValueError, match=r"train_batch got 3 models but a batch of 2 targets"):
        ef.train_batch(models, targets, optax.sgd(0.1), 10)
    with pytest.raises(TypeError, match=r"expected an ebmflow\.Target; got ndarray"):
        ef.train_batch(models, np.full(2**N, 2.0**-N), optax.sgd(0.1), 10)
    # a batch given where one model is expected
    for call in (lambda: ef.flow(models, _target(), 1.0), lambda: ef.train(models, _target(), optax.sgd(0.1), 10),
                 lambda: ef.kl(models, _target())):
        with pytest.raises(ValueError, match=r"RBM\.weights has 3 axes where one model's has 2 \(a batch of models "
                                             r"goes to flow_batch or train_batch\)"):
            call()
    potts_batch = eqx.filter_vmap(lambda k: ef.PottsRBM.init(k, 3, 3, 2))(jax.random.split(jax.random.key(0), 1))
    with pytest.raises(ValueError, match=r"PottsRBM\.weights has 4 axes where one model's has 3"):
        ef.kl(potts_batch, ef.Target.from_model(ef.PottsRBM.init(jax.random.key(1), 3, 3, 2)))


class Field(ef.AbstractEnergy):
    """A user energy whose parameter broadcasts: ``h`` of shape ``(3,)`` or a scalar gives a scalar energy."""

    space: ef.Spins
    h: jax.Array

    def energy(self, s):
        return -jnp.sum(self.h * s)


def test_a_single_model_whose_leading_sizes_coincide_is_not_a_batch():
    """Ising at n = 3 has 3 fields and 3 couplings, an RBM with 3 hidden units and 3 spins 3 rows, a user energy
    with 3 fields that would also take a scalar: not a batch of 3."""
    for model in (_ising(3), _rbm(3, 3), Field(ef.Spins(3), jnp.array([0.1, -0.2, 0.3]))):
        name = type(model).__name__
        with pytest.raises(ValueError, match=rf"flow_batch got a single {name} \(its energy of one state is a "
                                             rf"scalar\).*or use ebmflow\.flow$"):
            ef.flow_batch(model, _target(3), 1.0)
    with pytest.raises(ValueError, match=r"train_batch got a single Ising.*or use ebmflow\.train$"):
        ef.train_batch(_ising(3), _target(3), optax.sgd(0.1), 10)


# ----------------------------------------------------------------------------- 11: results files


def test_bit_flipped_results_file(tmp_path):
    path = save(tmp_path / "results.npz", {"name": "flip"}, {"kl": np.linspace(1.0, 0.0, 2000)})
    assert ef.load(path).metadata["name"] == "flip"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the array's bytes: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"results file '.*results\.npz' is damaged \(a corrupted or truncated \.npz "
                                         r"archive\): Bad CRC-32 for file 'kl\.npy'"):
        ef.load(tmp_path)


# ----------------------------------------------------------------------------- 12: constructors and casts


def test_ising_from_a_matrix_with_nan_or_inf():
    for bad in (np.nan, np.inf):
        matrix = np.zeros((3, 3))
        matrix[0, 2] = matrix[2, 0] = bad
        with pytest.raises(ValueError, match=r"the coupling matrix has NaN or infinite entries; couplings must be "
                                             r"finite"):
            ef.Ising.from_matrix(np.zeros(3), matrix)


def test_ising_from_a_matrix_of_strings_or_complex_numbers():
    with pytest.raises(ValueError, match=r"the coupling matrix must hold real numbers; got an array of dtype <U1"):
        ef.Ising.from_matrix(np.zeros(2), [["0", "1"], ["1", "0"]])
    with pytest.raises(ValueError, match=r"the coupling matrix must be real; got complex entries"):
        ef.Ising.from_matrix(np.zeros(2), np.array([[0, 1j], [1j, 0]]))


class MaskedPairs(ef.AbstractEnergy):
    """A user energy with an integer array that is not a parameter."""

    space: ef.Spins
    couplings: jax.Array
    pairs: jax.Array  # int (K, 2)

    def energy(self, s):
        return -jnp.sum(self.couplings * s[self.pairs[:, 0]] * s[self.pairs[:, 1]])


def test_cast_parameters_round_trip():
    """Parameters (inexact arrays) cast as NumPy casts them; integer arrays, static fields and structure kept."""
    user = MaskedPairs(ef.Spins(N), jnp.asarray([0.1, -0.7, 1 / 3]), jnp.asarray([[0, 1], [1, 3], [0, 2]]))
    for original in (_rbm(seed=1), user):
        f32 = ef.cast_parameters(original, jnp.float32)
        assert jax.tree_util.tree_structure(f32) == jax.tree_util.tree_structure(original)  # static fields included
        leaves, leaves32 = jax.tree_util.tree_leaves(original), jax.tree_util.tree_leaves(f32)
        for value, got in zip(leaves, leaves32):
            if eqx.is_inexact_array(value):
                assert got.dtype == np.float32
                np.testing.assert_array_equal(got, np.asarray(value).astype(np.float32))
            else:
                assert got.dtype == value.dtype
                np.testing.assert_array_equal(got, value)
        back = ef.cast_parameters(f32, jnp.float64)
        for value, got in zip(leaves32, jax.tree_util.tree_leaves(back)):
            assert got.dtype == (np.float64 if eqx.is_inexact_array(value) else value.dtype)
            np.testing.assert_array_equal(got, np.asarray(value))  # float32 values are exact in float64
        assert float(ef.kl(f32, _target())) == pytest.approx(float(ef.kl(original, _target())), rel=1e-5)


# ----------------------------------------------------------------------------- Potts spaces, tensors, orders


def test_potts_bad_sites_states_orders_and_spaces():
    model = ef.PottsRBM.init(jax.random.key(0), 3, 3, 2, scale=0.5)
    with pytest.raises(ValueError, match=r"sites must be a tuple of site indices, or a list of tuples of one length; "
                                         r"got \[\(0, 1\), \(2,\)\]"):
        ef.coupling_tensor(model, [(0, 1), (2,)])
    with pytest.raises(TypeError, match=r"expected an energy model \(a subclass of ebmflow.AbstractEnergy\); got "
                                        r"ArrayImpl"):
        ef.coupling_tensor(jnp.zeros(27), (0,))
    with pytest.raises(TypeError, match=r"space must be a state space such as ebmflow.Spins\(n\) or "
                                        r"ebmflow.Potts\(n, q\), or None"):
        ef.Target.from_probs(np.full(27, 1 / 27), space=3)
    for k in (4, -1, 1.0):
        with pytest.raises(ValueError, match=rf"the order k must be an int in \[0, n=3\]; got {k!r}"):
            ef.couplings_of_order(ef.couplings(model), k, model)
    for states in ([3, 0, 0], [0, -1, 0], [0.0, 1.0, 2.0], [0, 1]):
        with pytest.raises(ValueError, match=r"states of Potts\(n=3, q=3.*\) must be integer colours in 0\.\.2 with a "
                                             r"last axis of length 3"):
            model.space.state_index(np.array(states))
    with pytest.raises(ValueError, match=r"encoding='pm1' is for binary samples \(spins\); with q given the samples "
                                         r"are integer colours"):
        ef.Target.from_samples(np.array([[0, 1], [2, 1]]), q=3, encoding="pm1", pseudocount=1)


def test_spaces_beyond_float_range_are_refused_by_the_budgets():
    """q**n past float's range (1.8e308; a 235-site protein RBM has 21**235 ≈ 1e311 states) still gets the budget
    refusal, with its sizes written out, not an OverflowError from formatting them."""
    with pytest.raises(ef.MemoryBudgetError, match=r"couplings for n=235, q=21 .*needs an estimated [0-9.]+e\+293 EiB"):
        ef.couplings(ef.PottsRBM.init(jax.random.key(0), 235, 21, 1))
    with pytest.raises(ef.MemoryBudgetError, match=r"tangent kernel K \(3\.432e\+156 × 3\.432e\+156\)"):  # 2**520
        ef.tangent_kernel(ef.RBM.init(jax.random.key(0), 520, 2))
    with pytest.raises(ef.MemoryBudgetError, match=r"coupling Jacobian G \(1\.358e\+331 × 3302\)"):  # 2**1100
        ef.coupling_jacobian(ef.RBM.init(jax.random.key(0), 1100, 2))
    with pytest.raises(ef.ComputeBudgetError, match=r"log_partition for n=1100 sums over 1\.358e\+331 states"):
        ef.log_partition(ef.RBM.init(jax.random.key(0), 1100, 2))
    from ebmflow._budget import format_bytes

    assert format_bytes(2**2000) == f"{2**1940 / 10**583:.3g}e+583 EiB"  # 2**2000 B = 2**1940 EiB


def test_coupling_vectors_that_are_scalars_or_of_another_space():
    space = ef.Potts(2, 3)
    for call in (lambda: ef.order_norms(np.float64(1.0), space), lambda: ef.couplings_of_order(1.0, 1, space),
                 lambda: ef.order_norms(1.0)):
        with pytest.raises(ValueError, match=r"couplings must be an array with a last axis of length q\*\*n .*scalar"):
            call()
    with pytest.raises(ValueError, match=r"x over Potts\(n=2, q=3.*last axis of length 9; got shape \(27,\)"):
        space.transform(np.ones(27))  # a vector of Potts(3, 3): not silently transformed as n = 3
    with pytest.raises(ValueError, match=r"couplings over Potts\(n=2, q=3.*last axis of length 9; got shape \(\)"):
        space.values(2.0)
    with pytest.raises(ValueError, match=r"x over Spins\(n=2.*last axis of length 4; got shape \(8,\)"):
        ef.Spins(2).transform(np.ones(8))
    with pytest.raises(ValueError, match=r"x must have a last axis of length 2\*\*n; got a scalar"):
        ef.fwht(1.0)


def test_random_keys_and_dense_limit():
    """A key is one JAX random key (typed or legacy); an int seed or a batch of keys is refused by name."""
    model = ef.PottsRBM.init(jax.random.key(0), 2, 3, 2)
    target = ef.Target.from_model(model)
    for bad in (3, "a", jax.random.split(jax.random.key(0), 2), np.zeros(3, np.uint32)):
        with pytest.raises(ValueError, match=r"key must be one JAX random key, such as jax.random.key\(0\)"):
            ef.stability(model, target, key=bad)
    for init in (lambda k: ef.RBM.init(k, 3, 2), lambda k: ef.Ising.init(k, 3), lambda k: ef.MLPEnergy.init(k, 3),
                 lambda k: ef.PottsPairwise.init(k, 2, 3), lambda k: ef.WalshModel.init(k, 3),
                 lambda k: ef.CouplingModel.init(k, ef.Potts(2, 3)), lambda k: ef.targets.random_ising(k, 3, {1: 0.1}),
                 lambda k: ef.targets.random_potts(k, 2, 3, {1: 0.1}), lambda k: ef.HigherOrderIsing.init(k, 3),
                 lambda k: ef.targets.edwards_anderson(k, 2, 2, 1.0)):
        with pytest.raises(ValueError, match=r"key must be one JAX random key"):
            init(3)
        # a legacy key is the same key: the same draw
        same = jax.tree.map(np.array_equal, init(jax.random.PRNGKey(5)), init(jax.random.key(5)))
        assert all(jax.tree.leaves(same))
    batch = jax.vmap(lambda k: ef.RBM.init(k, 3, 2))(jax.random.split(jax.random.key(1), 4))  # traced keys pass
    assert batch.weights.shape[0] == 4
    for bad in ("a", -1, 2.5, True):
        with pytest.raises(ValueError, match=r"dense_limit must be an int >= 0"):
            ef.stability(model, target, dense_limit=bad)
