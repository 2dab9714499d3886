"""Targets from samples, probabilities and models; synthetic teachers."""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from models import rbm

import ebmflow
from ebmflow import targets

EXACT = {"rtol": 0, "atol": 1e-10}
neg_energies = eqx.filter_jit(ebmflow.neg_energies)
log_probs = eqx.filter_jit(ebmflow.log_probs)


def _samples_01(n=3, m=40, seed=0):
    """{0,1} samples that visit every state (so that no pseudocount is needed)."""
    rng = np.random.default_rng(seed)
    every = np.array(list(itertools.product((0, 1), repeat=n)))
    return np.concatenate([every, rng.integers(0, 2, size=(m - len(every), n))])


# ----------------------------------------------------------------------------- from samples


@pytest.mark.parametrize("spin_map", ["2v-1", "1-2v"])
def test_from_samples_01(spin_map):
    v = _samples_01()
    target = ebmflow.Target.from_samples(v, spin_map=spin_map)
    s = 2 * v - 1 if spin_map == "2v-1" else 1 - 2 * v
    np.testing.assert_allclose(target.probs, ref.empirical_probs(s, 3), **EXACT)
    assert target.n == 3
    assert "encoding 01 (detected)" in target.description
    assert f"mapped by s = {spin_map}" in target.description
    assert "40 samples" in target.description


def test_from_samples_pm1_and_stated_encoding():
    s = 2 * _samples_01(seed=1) - 1
    detected = ebmflow.Target.from_samples(s)
    stated = ebmflow.Target.from_samples(s, encoding="pm1")
    np.testing.assert_allclose(detected.probs, ref.empirical_probs(s, 3), **EXACT)
    np.testing.assert_allclose(stated.probs, detected.probs, **EXACT)
    assert "encoding pm1 (detected)" in detected.description
    assert "encoding pm1 (stated)" in stated.description
    assert "mapped by" not in detected.description


def test_pseudocount_formula():
    """p = (count + α) / (M + α 2^n), with unseen states."""
    n, alpha = 4, 0.5
    s = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [-1, 1, -1, 1], [1, -1, -1, -1], [-1, -1, -1, -1]])
    target = ebmflow.Target.from_samples(s, pseudocount=alpha)
    counts = np.zeros(2**n)
    for row in s:
        counts[ref.index(row)] += 1
    np.testing.assert_allclose(target.probs, (counts + alpha) / (len(s) + alpha * 2**n), **EXACT)
    np.testing.assert_allclose(target.probs, ref.empirical_probs(s, n, alpha), **EXACT)
    assert "pseudocount 0.5" in target.description


def test_from_samples_dtype_and_entropy():
    s = 2 * _samples_01(seed=2) - 1
    target = ebmflow.Target.from_samples(s, dtype=jnp.float32)
    assert target.probs.dtype == jnp.float32
    p = ref.empirical_probs(s, 3)
    np.testing.assert_allclose(target.probs, p, rtol=1e-6)  # float32 rounding
    np.testing.assert_allclose(ebmflow.Target.from_samples(s).entropy, ref.entropy(p), **EXACT)


def _write(path, x):
    if path.suffix == ".npy":
        np.save(path, x)
    elif path.suffix == ".csv":
        np.savetxt(path, x, fmt="%d", delimiter=",")
    else:
        np.savetxt(path, x, fmt="%d")


@pytest.mark.parametrize("encoding", ["01", "pm1"])
@pytest.mark.parametrize("ext", [".npy", ".csv", ".txt"])
def test_from_sample_files(tmp_path, ext, encoding):
    v = _samples_01(n=4, m=30, seed=3)
    x = v if encoding == "01" else 1 - 2 * v
    path = tmp_path / f"samples{ext}"
    _write(path, x)
    target = ebmflow.Target.from_samples(path)
    s = 2 * v - 1 if encoding == "01" else x
    np.testing.assert_allclose(target.probs, ref.empirical_probs(s, 4), **EXACT)
    assert f"encoding {encoding} (detected)" in target.description
    assert repr(str(path)) in target.description
    same = targets.from_samples(str(path), encoding=encoding)
    np.testing.assert_allclose(same.probs, target.probs, **EXACT)
    assert f"encoding {encoding} (stated)" in same.description
    np.testing.assert_array_equal(targets.read_samples(path), x)


def test_single_column_and_single_row_files(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("0\n1\n1\n")
    np.testing.assert_allclose(ebmflow.Target.from_samples(path).probs, [2 / 3, 1 / 3], **EXACT)
    path = tmp_path / "row.csv"
    path.write_text("1,0\n")
    assert targets.read_samples(path).shape == (1, 2)


# ----------------------------------------------------------------------------- from probabilities and models


def test_from_probs():
    p = ref.log_probs(np.arange(8.0))
    target = ebmflow.Target.from_probs(np.exp(p))
    assert target.n == 3 and target.description == "probability vector"
    np.testing.assert_allclose(target.log_probs, p, **EXACT)
    np.testing.assert_allclose(target.entropy, ref.entropy(np.exp(p)), **EXACT)
    weights = np.array([1, 2, 3, 4])
    normalized = ebmflow.Target.from_probs(weights, normalize=True)
    assert jnp.issubdtype(normalized.probs.dtype, jnp.floating)
    np.testing.assert_allclose(normalized.probs, weights / 10, **EXACT)
    np.testing.assert_allclose(eqx.filter_jit(ebmflow.moments)(normalized), ref.moments(weights / 10), **EXACT)


def test_from_model_refuses_an_underflowing_teacher():
    cold = ebmflow.targets.ising_chain(10, beta=40.0)  # energies span 800 nats: p = 0 in float64
    with pytest.raises(ValueError, match=r"the distribution of Ising underflows: \d+ of 1024 states have p = 0 in "
                                         r"float64 .* use a weaker teacher"):
        ebmflow.Target.from_model(cold)


def test_from_model():
    model = rbm(4, 2, scale=0.8)
    target = ebmflow.Target.from_model(model)
    np.testing.assert_allclose(target.probs, np.exp(ref.log_probs(ref.neg_energies(model))), **EXACT)
    assert "RBM" in target.description


def test_target_works_under_jit_and_vmap():
    probs = np.stack([random / random.sum() for random in np.random.default_rng(0).random((3, 8)) + 0.1])
    entropies = jax.vmap(lambda p: ebmflow.Target(p).entropy)(probs)
    np.testing.assert_allclose(entropies, [ref.entropy(p) for p in probs], **EXACT)


# ----------------------------------------------------------------------------- teachers


def test_random_ising_orders_densities_and_counts():
    n = 8
    teacher = targets.random_ising(jax.random.PRNGKey(0), n, stds={1: 0.2, 2: 0.3, 3: 0.1}, density={2: 0.5, 3: 0.25})
    assert isinstance(teacher, ebmflow.HigherOrderIsing)
    orders = [ref.popcount(s) for s in teacher.subsets]
    assert orders.count(1) == n
    assert orders.count(2) == round(0.5 * math.comb(n, 2))
    assert orders.count(3) == round(0.25 * math.comb(n, 3))
    assert len(set(teacher.subsets)) == len(teacher.subsets) == teacher.couplings.shape[0]
    assert all(0 < s < 2**n for s in teacher.subsets)
    uniform = targets.random_ising(jax.random.PRNGKey(0), n, stds={2: 1.0}, density=0.2)
    assert len(uniform.subsets) == round(0.2 * 28) and {ref.popcount(s) for s in uniform.subsets} == {2}
    # The couplings of order k are stds[k] times unit normals: doubling every std doubles every coupling.
    doubled = targets.random_ising(jax.random.PRNGKey(0), n, stds={1: 0.4, 2: 0.6, 3: 0.2}, density={2: 0.5, 3: 0.25})
    assert doubled.subsets == teacher.subsets
    np.testing.assert_allclose(doubled.couplings, 2 * np.asarray(teacher.couplings), **EXACT)


def test_random_ising_stds_scale_the_spread():
    n = 8
    teacher = targets.random_ising(jax.random.PRNGKey(1), n, stds={1: 0.01, 2: 1.0})
    j = np.asarray(teacher.couplings)
    orders = np.array([ref.popcount(s) for s in teacher.subsets])
    assert np.abs(j[orders == 1]).max() < 0.05  # 8 draws of N(0, 0.01²)
    assert 0.6 < j[orders == 2].std() < 1.4  # 28 draws of N(0, 1) (fixed key, not a flaky statistic)


def _chain_neg_energy(s, beta, coupling, field, periodic):
    n = len(s)
    bonds = [(i, i + 1) for i in range(n - 1)] + ([(n - 1, 0)] if periodic else [])
    return beta * (coupling * sum(s[i] * s[j] for i, j in bonds) + field * sum(s))


def _grid_neg_energy(s, rows, cols, beta, coupling, field, periodic):
    total = 0.0
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols or periodic:
                total += s[i] * s[r * cols + (c + 1) % cols]
            if r + 1 < rows or periodic:
                total += s[i] * s[((r + 1) % rows) * cols + c]
    return beta * (coupling * total + field * sum(s))


@pytest.mark.parametrize("periodic", [True, False])
def test_ising_chain(periodic):
    n, beta, coupling, field = 5, 0.7, 1.3, -0.4
    teacher = targets.ising_chain(n, beta, coupling, field, periodic=periodic)
    expected = [_chain_neg_energy(ref.state(b, n), beta, coupling, field, periodic) for b in range(2**n)]
    np.testing.assert_allclose(neg_energies(teacher), expected, **EXACT)


@pytest.mark.parametrize(("rows", "cols", "periodic"), [(3, 3, True), (2, 3, False)])
def test_ising_grid(rows, cols, periodic):
    beta, coupling, field = 0.4, 0.9, 0.2
    teacher = targets.ising_grid(rows, cols, beta, coupling, field, periodic=periodic)
    n = rows * cols
    expected = [_grid_neg_energy(ref.state(b, n), rows, cols, beta, coupling, field, periodic) for b in range(2**n)]
    np.testing.assert_allclose(neg_energies(teacher), expected, **EXACT)


def test_edwards_anderson_bonds_are_plus_minus_beta():
    rows, cols, beta = 4, 4, 0.8
    teacher = targets.edwards_anderson(jax.random.PRNGKey(3), rows, cols, beta)
    matrix = np.asarray(teacher.matrix)
    bonds = set()
    for r, c in itertools.product(range(rows), range(cols)):
        i = r * cols + c
        bonds |= {tuple(sorted((i, r * cols + (c + 1) % cols))), tuple(sorted((i, ((r + 1) % rows) * cols + c)))}
    assert len(bonds) == 2 * rows * cols
    for i, j in itertools.combinations(range(rows * cols), 2):
        if (i, j) in bonds:
            assert abs(matrix[i, j]) == pytest.approx(beta, abs=1e-15)
        else:
            assert matrix[i, j] == 0
    values = np.array([matrix[i, j] for i, j in bonds])
    assert (values > 0).any() and (values < 0).any()
    np.testing.assert_array_equal(teacher.fields, 0)


def test_sparse_parity():
    n, sites, beta = 5, (0, 2, 3), 0.9
    teacher = targets.sparse_parity(n, sites, beta)
    expected = ref.log_probs([beta * np.prod([s[i] for i in sites]) for s in ref.states(n)])
    np.testing.assert_allclose(log_probs(teacher), expected, **EXACT)
    j = np.asarray(eqx.filter_jit(ebmflow.couplings)(teacher))
    parity = ebmflow.subset(*sites)
    assert j[parity] == pytest.approx(beta, abs=1e-12)
    np.testing.assert_allclose(np.delete(j, [0, parity]), 0, **EXACT)


def test_periodic_side_of_two_doubles_the_bond():
    # A ring of two sites has two bonds between the same pair: -E = 2 β s_0 s_1.
    beta = 0.3
    chain = targets.ising_chain(2, beta)
    for b in range(4):
        s = ref.state(b, 2)
        assert np.isclose(ref.neg_energy(chain, s), 2 * beta * s[0] * s[1], atol=1e-12)
    grid = targets.ising_grid(2, 2, beta)  # each of the 4 pairs is bonded twice
    for b in range(16):
        s = ref.state(b, 4)
        expected = 2 * beta * (s[0] * s[1] + s[2] * s[3] + s[0] * s[2] + s[1] * s[3])
        assert np.isclose(ref.neg_energy(grid, s), expected, atol=1e-12)


def test_sum_to_one_tolerance_follows_dtype():
    # float32 probabilities of many states sum to 1 only to ~1e-6 (seen at n = 20): accepted up to 1e-4;
    # float64 ones must sum to 1 within 1e-6.
    p = np.full(2**10, 1.0 / 2**10)
    p[0] += 5e-6
    assert ebmflow.Target(jnp.asarray(p, jnp.float32)).probs.dtype == jnp.float32
    with pytest.raises(ValueError, match="must sum to 1"):
        ebmflow.Target(jnp.asarray(p, jnp.float64))
    q = np.full(2**10, 1.0 / 2**10)
    q[0] += 5e-4
    with pytest.raises(ValueError, match="must sum to 1"):
        ebmflow.Target(jnp.asarray(q, jnp.float32))
