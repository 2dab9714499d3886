"""Bad input fails early, with a message that names the argument, shows what was received and what is accepted."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebmflow
from ebmflow import targets
from ebmflow._budget import parse_bytes

KEY = jax.random.PRNGKey(0)


@pytest.fixture
def budget():
    """Sets a memory budget for one test and always restores the default."""
    try:
        yield ebmflow.set_memory_budget
    finally:
        ebmflow.set_memory_budget(None)


def _target(n):
    return ebmflow.Target.from_probs(np.full(2**n, 2.0**-n))


# ----------------------------------------------------------------------------- samples and files


def test_non_binary_samples_report_value_row_and_column():
    x = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 3], [0, 0, 2]])
    # The value may print as a NumPy scalar repr, e.g. np.int64(3).
    match = r"samples must be binary.*row 2, column 2 holds (np\.int64\()?3\b.*2 entries are not binary"
    with pytest.raises(ValueError, match=match):
        ebmflow.Target.from_samples(x)
    with pytest.raises(ValueError, match=r"encoding 'pm1'.*\(-1, 1\).*row 0, column 0 holds (np\.int64\()?0\b"):
        ebmflow.Target.from_samples(np.array([[0, 1], [1, -1]]), encoding="pm1")
    with pytest.raises(ValueError, match=r"row 1, column 0 holds (np\.float64\()?0\.5\b"):
        ebmflow.Target.from_samples(np.array([[0.0, 1.0], [0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"encoding '01'.*\(0, 1\).*row 0, column 1 holds (np\.int64\()?-1\b"):
        ebmflow.Target.from_samples(np.array([[1, -1]]), encoding="01", pseudocount=1)


def test_bad_sample_shapes_and_options():
    with pytest.raises(ValueError, match=r"samples must have shape \(num_samples, n\).*got \(4,\)"):
        ebmflow.Target.from_samples(np.array([0, 1, 1, 0]))
    with pytest.raises(ValueError, match=r"at least one sample; got \(0, 3\)"):
        ebmflow.Target.from_samples(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="encoding must be 'auto', '01', 'pm1' or 'colours'; got 'bits'"):
        ebmflow.Target.from_samples(np.array([[0, 1]]), encoding="bits")
    with pytest.raises(ValueError, match="spin_map must be '2v-1' or '1-2v'; got 'v'"):
        ebmflow.Target.from_samples(np.array([[0, 1]]), spin_map="v")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"pseudocount must be a finite number >= 0; got"):
            ebmflow.Target.from_samples(np.array([[0, 1]]), pseudocount=bad)


def test_zero_probability_target_without_pseudocount():
    match = r"2 of the 2\*\*2 = 4 states never occur in the 3 samples.*pass pseudocount > 0"
    with pytest.raises(ValueError, match=match):
        ebmflow.Target.from_samples(np.array([[0, 0], [1, 1], [1, 1]]))
    with pytest.raises(ValueError, match=r"strictly positive.*1 of 4 states have p <= 0, first state 2 with p = 0"):
        ebmflow.Target.from_probs([0.5, 0.25, 0.0, 0.25])
    with pytest.raises(ValueError, match=r"must be finite; state 1 has nan"):
        ebmflow.Target.from_probs([0.5, np.nan, 0.25, 0.25])
    with pytest.raises(ValueError, match=r"must sum to 1; they sum to 1\.5.*normalize=True"):
        ebmflow.Target.from_probs([0.5, 0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match=r"last axis of length 2\*\*n; got length 6"):
        ebmflow.Target.from_probs(np.full(6, 1 / 6))
    with pytest.raises(ValueError, match=r"target probs must have shape \(2\*\*n,\); got \(2, 2\)"):
        ebmflow.Target(np.full((2, 2), 0.25))
    with pytest.raises(ValueError, match=r"n >= 1; got shape \(1,\)"):
        ebmflow.Target(np.ones(1))


def test_unreadable_files(tmp_path):
    missing = tmp_path / "missing.npy"
    with pytest.raises(ValueError, match=r"cannot read samples from '.*missing\.npy'"):
        ebmflow.Target.from_samples(missing)
    garbage = tmp_path / "garbage.npy"
    garbage.write_text("this is not an npy file")
    with pytest.raises(ValueError, match=r"cannot read samples from '.*garbage\.npy'"):
        ebmflow.Target.from_samples(garbage)
    text = tmp_path / "words.csv"
    text.write_text("a,b\nc,d\n")
    with pytest.raises(ValueError, match=r"cannot read samples from '.*words\.csv'"):
        ebmflow.Target.from_samples(text)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("0 1 1\n1 0\n")
    with pytest.raises(ValueError, match=r"cannot read samples from '.*ragged\.txt'"):
        targets.read_samples(ragged)


def test_unknown_file_extension(tmp_path):
    path = tmp_path / "samples.json"
    path.write_text("[[0, 1]]")
    with pytest.raises(ValueError, match=r"cannot read samples from '.*samples\.json': accepted file types are "
                                         r"\.npy, \.csv and \.txt"):
        ebmflow.Target.from_samples(path)


def test_file_samples_are_validated_like_arrays(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("0,1\n1,7\n")
    with pytest.raises(ValueError, match=r"row 1, column 1 holds (np\.float64\()?7(\.0)?\b"):
        ebmflow.Target.from_samples(path)


# ----------------------------------------------------------------------------- model constructors


def test_ising_shapes():
    with pytest.raises(ValueError, match=r"Ising needs fields of shape \(n,\) and couplings of shape \(n\(n-1\)/2,\); "
                                         r"got \(4,\) and \(5,\)"):
        ebmflow.Ising(np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match=r"got \(2, 2\) and \(1,\)"):
        ebmflow.Ising(np.zeros((2, 2)), np.zeros(1))
    with pytest.raises(ValueError, match=r"square and symmetric; got shape \(2, 3\)"):
        ebmflow.Ising.from_matrix(np.zeros(2), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"square and symmetric; got shape \(2, 2\)"):
        ebmflow.Ising.from_matrix(np.zeros(2), np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"number of spins n must be a positive int; got 0"):
        ebmflow.Ising(np.zeros(0), np.zeros(0))


def test_higher_order_ising_shapes():
    with pytest.raises(ValueError, match=r"couplings must have shape \(2,\), one per subset; got \(3,\)"):
        ebmflow.HigherOrderIsing(4, [1, 6], np.zeros(3))
    with pytest.raises(ValueError, match=r"nonzero bitmasks below 2\*\*n = 16; got \[0, 16\]"):
        ebmflow.HigherOrderIsing(4, [0, 3, 16], np.zeros(3))
    with pytest.raises(ValueError, match="subsets must not repeat"):
        ebmflow.HigherOrderIsing(4, [3, 3], np.zeros(2))
    with pytest.raises(ValueError, match=r"HigherOrderIsing needs at least one subset \(max_order >= 1\); got none"):
        ebmflow.HigherOrderIsing.init(KEY, 4, max_order=0)


def test_rbm_shapes():
    with pytest.raises(ValueError, match=r"weights must have shape \(n_hidden, n\); got \(4,\)"):
        ebmflow.RBM(np.zeros(4), np.zeros(4), np.zeros(1))
    match = r"visible_bias must have shape \(4,\) and hidden_bias \(2,\); got \(3,\) and \(2,\)"
    with pytest.raises(ValueError, match=match):
        ebmflow.RBM(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"got \(4,\) and \(3,\)"):
        ebmflow.RBM(np.zeros((2, 4)), np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match="hidden must be 'spin' or 'bernoulli'; got 'gaussian'"):
        ebmflow.RBM(np.zeros((2, 4)), np.zeros(4), np.zeros(2), hidden="gaussian")
    with pytest.raises(ValueError, match=r"an RBM needs at least one hidden unit; got weights of shape \(0, 4\)"):
        ebmflow.RBM(np.zeros((0, 4)), np.zeros(4), np.zeros(0))
    for bad in (-1, 0, 2.5, True):
        with pytest.raises(ValueError, match=rf"n_hidden must be a positive int; got {bad!r}"):
            ebmflow.RBM.init(KEY, 4, bad)


def test_integer_arrays_become_float_parameters():
    """Integer arrays would not be inexact, so not parameters: the built-in models make them floats."""
    models = (
        ebmflow.RBM(np.ones((2, 3), int), np.zeros(3, int), np.zeros(2, int)),
        ebmflow.Ising(np.zeros(3, int), np.ones(3, int)),
        ebmflow.HigherOrderIsing(3, [1, 6], np.array([1, 2])),
        ebmflow.WalshModel(np.arange(7)),
    )
    for model, size in zip(models, (11, 6, 2, 7)):
        theta, _ = ebmflow.flatten(model)
        assert theta.shape == (size,) and theta.dtype == jnp.result_type(float), type(model).__name__


def test_walsh_model_shapes():
    for bad in (np.zeros(6), np.zeros(0), np.zeros((3, 1))):
        with pytest.raises(ValueError, match=r"WalshModel needs 2\*\*n - 1 couplings for some n >= 1; got shape"):
            ebmflow.WalshModel(bad)


def test_mlp_shapes():
    # Shapes only: building layers for real would compile their initialisers op by op.
    def linear(i, o):
        return eqx.filter_eval_shape(eqx.nn.Linear, i, o, key=KEY)
    with pytest.raises(ValueError, match=r"activation must be one of \['gelu', 'relu', .*\]; got 'swish'"):
        ebmflow.MLPEnergy([linear(4, 1)], activation="swish")
    with pytest.raises(ValueError, match=r"layer 1 has in_features=5 but layer 0 has out_features=3"):
        ebmflow.MLPEnergy([linear(4, 3), linear(5, 1)])
    with pytest.raises(ValueError, match=r"last layer must have out_features=1.*got 2"):
        ebmflow.MLPEnergy([linear(4, 3), linear(3, 2)])
    with pytest.raises(ValueError, match=r"at least one layer"):
        ebmflow.MLPEnergy([])
    with pytest.raises(ValueError, match=r"widths entry must be a positive int; got 0"):
        ebmflow.MLPEnergy.init(KEY, 4, widths=(3, 0))


# ----------------------------------------------------------------------------- parameters, pairs, sizes


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_parameters(bad):
    weights = np.zeros((2, 3))
    weights[1, 2] = bad
    rbm = ebmflow.RBM(weights, np.zeros(3), np.zeros(2))
    for fn in (ebmflow.log_partition, ebmflow.neg_energies, ebmflow.log_probs, ebmflow.couplings,
               ebmflow.coupling_jacobian):
        with pytest.raises(ValueError, match=r"model parameter RBM\.weights has NaN or infinite entries"):
            fn(rbm)
    with pytest.raises(ValueError, match=r"model parameter Ising\.fields has NaN or infinite entries"):
        ebmflow.kl(ebmflow.Ising(np.array([0.0, bad]), np.zeros(1)), _target(2))


def test_mismatched_model_and_target():
    model = ebmflow.Ising(np.zeros(4), np.zeros(6))
    for fn in (ebmflow.kl, ebmflow.nll, ebmflow.kl_and_grad):
        with pytest.raises(ValueError, match="model has n=4 spins but the target has n=5"):
            fn(model, _target(5))


def test_wrong_types():
    with pytest.raises(TypeError, match=r"expected an energy model .*AbstractEnergy.*; got ndarray"):
        ebmflow.log_partition(np.zeros(4))
    with pytest.raises(TypeError, match=r"expected an ebmflow\.Target; got ndarray"):
        ebmflow.kl(ebmflow.Ising(np.zeros(2), np.zeros(1)), np.full(4, 0.25))


@pytest.mark.parametrize("chunk_size", [0, -8, 2.5, True, "8"])
def test_bad_chunk_size(chunk_size):
    model = ebmflow.Ising(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int \(a number of states\); got"):
        ebmflow.with_chunk_size(model, chunk_size)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        ebmflow.with_chunk_size(_target(3), chunk_size)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        ebmflow.Spins(3, chunk_size)


def test_n_beyond_enumeration():
    with pytest.raises(ValueError, match=r"number of spins n must be a positive int; got 0"):
        ebmflow.all_states(0)
    with pytest.raises(ValueError, match=r"Spins\(n=49, .*\) has 2\*\*49 states, beyond exact enumeration.*2\*\*48"):
        ebmflow.all_states(49)
    # Models of any size exist (large-N couplings need them); their exact sums are refused by the budgets.
    model = ebmflow.HigherOrderIsing(49, [1], np.zeros(1))
    with pytest.raises(ebmflow.ComputeBudgetError, match=r"log_partition for n=49 sums over 5\.629e\+14 states"):
        ebmflow.log_partition(model)


def test_n_beyond_the_default_memory_budget():
    """2**40 energies need 8.8 TB: refused before allocating anything."""
    model = ebmflow.Ising(jnp.zeros(40), jnp.zeros(40 * 39 // 2))
    with pytest.raises(ebmflow.MemoryBudgetError, match=r"neg_energies for n=40 .*needs an estimated 8 TiB, over "
                                                        r"the memory budget"):
        ebmflow.neg_energies(model)
    with pytest.raises(ebmflow.MemoryBudgetError, match=r"all_states\(40\) needs"):
        ebmflow.all_states(40)


def test_small_memory_budget(budget):
    budget("1KiB")
    assert ebmflow.memory_budget() == 1024
    model = ebmflow.Ising(np.zeros(8), np.zeros(28))
    message = r"needs an estimated .* over the memory budget of 1 KiB.*set_memory_budget"
    for call in (
        lambda: ebmflow.log_partition(model),
        lambda: ebmflow.kl(model, _target(8)),
        lambda: ebmflow.neg_energies(ebmflow.with_chunk_size(model, 1)),
        lambda: ebmflow.all_states(8),
        lambda: ebmflow.Target.from_samples(np.ones((2, 8)), pseudocount=1),
    ):
        with pytest.raises(ebmflow.MemoryBudgetError, match=message):
            call()
    assert issubclass(ebmflow.MemoryBudgetError, ValueError)
    # A streamed sum with one state per chunk needs a few hundred bytes: it fits.
    log_z = eqx.filter_jit(ebmflow.log_partition)(ebmflow.with_chunk_size(model, 1))
    np.testing.assert_allclose(log_z, 8 * np.log(2), rtol=1e-14)
    budget(None)
    assert ebmflow.memory_budget() > 2**20


def test_memory_budget_from_environment(budget, monkeypatch):
    monkeypatch.setenv("EBMFLOW_MEMORY_BUDGET", "2KB")
    assert ebmflow.memory_budget() == 2000
    budget("3MiB")  # set_memory_budget wins over the environment
    assert ebmflow.memory_budget() == 3 * 2**20


def test_memory_sizes():
    assert parse_bytes(123) == 123
    assert parse_bytes("1e9") == 10**9
    assert parse_bytes("8GiB") == 8 * 2**30
    assert parse_bytes("500 MB") == 500 * 10**6
    assert parse_bytes("2kib") == 2048
    assert parse_bytes("3 B") == 3
    for bad in ("lots", "8GI", "-1", "1e"):
        with pytest.raises(ValueError, match=rf"cannot read memory size '{bad}'; use a positive size such as 8GiB"):
            ebmflow.set_memory_budget(bad)
    for bad in (0, -1, "0"):
        with pytest.raises(ValueError, match=rf"memory size must be positive; got {bad!r}: use a positive size"):
            ebmflow.set_memory_budget(bad)


@pytest.fixture
def state_budget():
    """Sets the state budget for one test and always restores the default."""
    try:
        yield ebmflow.set_state_budget
    finally:
        ebmflow.set_state_budget(None)


def test_sums_beyond_the_state_budget_are_refused_at_once(state_budget):
    """n = 40 is 2**40 states, over the default 2**32: refused before any work, with a time estimate."""
    import time

    model = ebmflow.RBM(np.zeros((40, 40)), np.zeros(40), np.zeros(40))
    start = time.perf_counter()
    with pytest.raises(ebmflow.ComputeBudgetError, match=r"log_partition for n=40 sums over 1\.1e\+12 states, over "
                       r"the budget of 4\.295e\+09 states .* roughly .* per pass.*set_state_budget"):
        ebmflow.log_partition(model)
    assert time.perf_counter() - start < 5
    assert ebmflow.state_budget() == 2**32 and issubclass(ebmflow.ComputeBudgetError, ValueError)
    state_budget(2**10)
    small = ebmflow.Ising(np.zeros(11), np.zeros(55))
    for call in (lambda: ebmflow.kl(small, _target(11)), lambda: ebmflow.couplings(small),
                 lambda: ebmflow.flow(small, _target(11), 1.0), lambda: ebmflow.stability(small, _target(11))):
        with pytest.raises(ebmflow.ComputeBudgetError, match=r"sums over 2048 states, over the budget of 1024"):
            call()
    np.testing.assert_allclose(ebmflow.log_partition(ebmflow.Ising(np.zeros(10), np.zeros(45))), 10 * np.log(2),
                               rtol=1e-14)
    for bad in (0, -3, "many", -1.0, True):
        with pytest.raises(ValueError, match="the state budget must be a positive number of states"):
            state_budget(bad)


def test_state_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv("EBMFLOW_STATE_BUDGET", "2e3")
    assert ebmflow.state_budget() == 2000
    monkeypatch.setenv("EBMFLOW_STATE_BUDGET", "lots")
    with pytest.raises(ValueError, match=r"variable EBMFLOW_STATE_BUDGET must be a positive number.*'lots'"):
        ebmflow.state_budget()
    monkeypatch.setenv("EBMFLOW_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match=r"cannot read the environment variable EBMFLOW_MEMORY_BUDGET 'lots'"):
        ebmflow.memory_budget()


def test_a_sum_over_2_to_the_36_states_builds_nothing_of_the_number_of_chunks(state_budget):
    """Traced only (not run): every array in the program is at most a chunk's work, not O(2**26 chunks)."""
    import equinox as eqx

    from ebmflow.exact._sums import streamed_log_partition

    state_budget(2**40)
    model = ebmflow.RBM(np.zeros((4, 36)), np.zeros(36), np.zeros(4))
    jaxpr = eqx.filter_make_jaxpr(lambda m: streamed_log_partition(m)[0])(model)[0]

    def sizes(jaxpr):
        for eqn in jaxpr.eqns:
            yield from (int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape"))
            for param in eqn.params.values():  # the bodies of scan, remat, ...
                if isinstance(param, jax.extend.core.ClosedJaxpr):
                    param = param.jaxpr
                if isinstance(param, jax.extend.core.Jaxpr):
                    yield from sizes(param)

    found = list(sizes(jaxpr.jaxpr))
    assert len(found) > 50 and max(found) <= 1024 * 36


def test_dense_objects_are_refused_beyond_the_budget(budget):
    """G (2**n × P), K (2**n × 2**n) and a WalshModel's 2**n - 1 couplings are dense: checked before building."""
    model = ebmflow.Ising(np.zeros(8), np.zeros(28))
    budget("16KiB")
    with pytest.raises(ebmflow.MemoryBudgetError, match=r"coupling Jacobian G \(256 × 36\) needs an estimated 216 KiB"):
        ebmflow.coupling_jacobian(model)
    with pytest.raises(ebmflow.MemoryBudgetError, match=r"tangent kernel K \(255 × 255\) needs an estimated 512 KiB"):
        ebmflow.tangent_kernel(model)
    with pytest.raises(ebmflow.MemoryBudgetError, match=r"WalshModel couplings for n=12 \(2\*\*n - 1 parameters\)"):
        ebmflow.WalshModel.init(jax.random.key(0), 12)


# ----------------------------------------------------------------------------- Walsh and teachers


def test_walsh_errors():
    with pytest.raises(ValueError, match=r"x must have a last axis of length 2\*\*n; got length 6"):
        ebmflow.fwht(np.zeros(6))
    with pytest.raises(ValueError, match=r"couplings must have a last axis of length 2\*\*n; got length 3"):
        ebmflow.order_norms(np.zeros(3))
    with pytest.raises(ValueError, match=r"spin_map must be '2v-1' or '1-2v'; got 's=v'"):
        ebmflow.to_binary_basis(np.zeros(4), "s=v")
    with pytest.raises(ValueError, match=r"spin_map must be"):
        ebmflow.from_binary_basis(np.zeros(4), "2v+1")
    with pytest.raises(ValueError, match=r"sites must be distinct non-negative ints; got \(1, 1\)"):
        ebmflow.subset(1, 1)
    with pytest.raises(ValueError, match=r"got \(-1,\)"):
        ebmflow.subset(-1)


def test_teacher_errors():
    with pytest.raises(ValueError, match=r"stds must map orders 1\.\.4 to standard deviations; got \{0: 1\.0\}"):
        targets.random_ising(KEY, 4, stds={0: 1.0})
    with pytest.raises(ValueError, match=r"stds must map orders"):
        targets.random_ising(KEY, 4, stds={})
    with pytest.raises(ValueError, match=r"density of order 2 must be in \(0, 1\]; got 1\.5"):
        targets.random_ising(KEY, 4, stds={2: 1.0}, density=1.5)
    with pytest.raises(ValueError, match=r"density of order 1 must be in \(0, 1\]; got 0"):
        targets.random_ising(KEY, 4, stds={1: 1.0}, density={1: 0})
    with pytest.raises(ValueError, match=r"sites must be distinct indices in \[0, 4\); got \(1, 4\)"):
        targets.sparse_parity(4, (1, 4), 1.0)
    with pytest.raises(ValueError, match=r"got \(\)"):
        targets.sparse_parity(4, (), 1.0)
    with pytest.raises(ValueError, match=r"number of spins n must be a positive int; got 0"):
        targets.ising_grid(0, 3, 1.0)


def test_negative_subset_has_no_sites():
    with pytest.raises(ValueError, match="non-negative bitmask; got -1"):
        ebmflow.sites(-1)
