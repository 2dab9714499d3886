"""State space: index <-> spins convention (THEORY §1) and the chunk plan of exact sums."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import ebmflow


@pytest.mark.parametrize("n", [1, 3, 7])
def test_all_states_matches_reference(n):
    s = ebmflow.all_states(n)
    assert s.shape == (2**n, n)
    assert s.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(s), ref.states(n))


def test_state_zero_is_all_plus_and_bit_zero_is_site_zero():
    s = np.asarray(ebmflow.states_from_indices(jnp.array([0, 1, 2, 5]), 3))
    np.testing.assert_array_equal(s, [[1, 1, 1], [-1, 1, 1], [1, -1, 1], [-1, 1, -1]])


@pytest.mark.parametrize("n", [1, 7])
def test_round_trip_all_states(n):
    b = jnp.arange(2**n)
    s = ebmflow.states_from_indices(b, n)
    np.testing.assert_array_equal(np.asarray(ebmflow.state_index(s)), np.arange(2**n))
    assert [ref.index(row) for row in np.asarray(s)] == list(range(2**n))


@pytest.mark.parametrize("n", [31, 48])
def test_round_trip_large_n_is_exact(n):
    """Beyond 30 spins the index needs int64; check bits near the top."""
    rng = np.random.default_rng(n)
    b = np.array([0, 1, 2**n - 1, 2 ** (n - 1) + 12345, *rng.integers(0, 2**n, size=5, dtype=np.int64)])
    s = np.asarray(ebmflow.states_from_indices(jnp.asarray(b), n))
    np.testing.assert_array_equal(s, np.array([ref.state(int(x), n) for x in b]))
    np.testing.assert_array_equal(np.asarray(ebmflow.state_index(s)), b)


def test_batch_shapes_and_dtype():
    b = jnp.arange(12).reshape(3, 4)
    s = ebmflow.states_from_indices(b, 4, jnp.float32)
    assert s.shape == (3, 4, 4) and s.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(ebmflow.state_index(s)), np.asarray(b))
    assert ebmflow.all_states(3, jnp.float32).dtype == jnp.float32


def test_state_index_accepts_integer_spins_and_vmaps():
    s = np.array([[1, -1, -1], [-1, -1, 1]], dtype=np.int8)
    np.testing.assert_array_equal(np.asarray(ebmflow.state_index(s)), [ref.index(r) for r in s])
    batched = jax.vmap(ebmflow.state_index)(jnp.asarray(s))
    np.testing.assert_array_equal(np.asarray(batched), [ref.index(r) for r in s])


@pytest.mark.parametrize("n", [1, 2, 5, 7, 12])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 8, 100, 2**20, None])
def test_chunk_plan_covers_every_state_once(n, chunk_size):
    plan = ebmflow.Spins(n, chunk_size)
    assert plan.n_chunks * plan.chunk_states == 2**n
    assert plan.n_lo + plan.n_hi == n
    if chunk_size is not None:
        assert plan.chunk_states <= max(chunk_size, 1)
    indices = []
    for chunk in range(plan.n_chunks):  # one value of the high bits, every value of the low bits
        indices.extend(chunk * 2**plan.n_lo + np.arange(2**plan.n_lo))
    assert indices == list(range(2**n))
