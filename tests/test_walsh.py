"""Walsh–Hadamard transform and coupling bookkeeping (THEORY §1-2), against an explicit Hadamard matrix."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from models import rbm

import ebmflow

EXACT = {"rtol": 0, "atol": 1e-10}

# Eager calls compile every primitive separately; numerical checks go through one compiled call.
fwht = jax.jit(ebmflow.fwht)
to_binary_basis = jax.jit(ebmflow.to_binary_basis, static_argnames="spin_map")
from_binary_basis = jax.jit(ebmflow.from_binary_basis, static_argnames="spin_map")
order_norms = jax.jit(ebmflow.order_norms)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_reference_hadamard_has_the_sylvester_order(n):
    """The reference itself: Kronecker products give H[S, b] = (-1)^popcount(S & b)."""
    np.testing.assert_array_equal(ref.hadamard(n), ref.hadamard_by_popcount(n))


@pytest.mark.parametrize("n", [0, 1, 2, 4, 7, 9])  # the transform takes 4 bits per pass: remainders and 2 passes
def test_fwht_is_the_hadamard_matrix(n):
    x = np.random.default_rng(n).normal(size=(3, 2**n))
    np.testing.assert_allclose(fwht(x), x @ ref.hadamard(n).T, **EXACT)
    np.testing.assert_allclose(fwht(x[0]), ref.hadamard(n) @ x[0], **EXACT)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_fwht_twice_is_2_to_the_n(n):
    x = np.random.default_rng(n).normal(size=2**n)
    np.testing.assert_allclose(fwht(fwht(x)), 2**n * x, **EXACT)


def test_fwht_jit_equals_eager():
    x = np.random.default_rng(0).normal(size=2**3)
    np.testing.assert_allclose(ebmflow.fwht(x), fwht(x), **EXACT)


def test_fwht_vmap_and_grad():
    n = 4
    h = ref.hadamard(n)
    x = np.random.default_rng(0).normal(size=(5, 2**n))
    w = np.random.default_rng(1).normal(size=2**n)
    looped = np.stack([fwht(row) for row in x])
    np.testing.assert_allclose(jax.jit(jax.vmap(ebmflow.fwht))(x), looped, **EXACT)
    # d/dx Σ_S w_S (Hx)_S = Hᵀ w, and the Jacobian is H itself.
    np.testing.assert_allclose(jax.jit(jax.grad(lambda v: ebmflow.fwht(v) @ w))(x[0]), h.T @ w, **EXACT)
    np.testing.assert_allclose(jax.jit(jax.jacrev(ebmflow.fwht))(x[0]), h, **EXACT)


def test_fwht_keeps_float32():
    assert fwht(jnp.ones(8, jnp.float32)).dtype == jnp.float32


@pytest.mark.parametrize("n", [1, 4, 7])
def test_orders_and_subsets_of_order(n):
    np.testing.assert_array_equal(ebmflow.orders(n), [ref.popcount(s) for s in range(2**n)])
    for k in range(n + 1):
        subsets = ebmflow.subsets_of_order(n, k)
        assert list(subsets) == ref.subsets_of_order(n, k)
        assert len(subsets) == math.comb(n, k)


def test_couplings_of_order_and_order_norms():
    n = 5
    j = np.random.default_rng(2).normal(size=(2, 2**n))
    for k in range(n + 1):
        np.testing.assert_array_equal(
            ebmflow.couplings_of_order(j, k), j[:, [s for s in range(2**n) if ref.popcount(s) == k]]
        )
    norms = [[math.sqrt(sum(row[s] ** 2 for s in range(2**n) if ref.popcount(s) == k)) for k in range(n + 1)]
             for row in j]
    np.testing.assert_allclose(order_norms(j), norms, **EXACT)
    np.testing.assert_allclose(order_norms(j[0]), norms[0], **EXACT)


def test_sites_and_subset():
    assert ebmflow.sites(0b1011) == (0, 1, 3)
    assert ebmflow.subset(0, 1, 3) == 0b1011
    assert ebmflow.sites(0) == () and ebmflow.subset() == 0
    for s in range(2**7):
        sites = ebmflow.sites(s)
        assert sites == tuple(i for i in range(7) if ref.bit(s, i))
        assert ebmflow.subset(*sites) == s
    assert ebmflow.subset(3, 0) == 0b1001  # order of the sites does not matter
    assert ebmflow.sites(np.int64(6)) == (1, 2)


@pytest.mark.parametrize("spin_map", ["2v-1", "1-2v"])
def test_binary_basis_polynomial_equals_spin_polynomial(spin_map):
    n = 4
    j = np.random.default_rng(3).normal(size=2**n)
    k = np.asarray(to_binary_basis(j, spin_map=spin_map))
    for bits in range(2**n):
        v = np.array([ref.bit(bits, i) for i in range(n)], dtype=float)
        s = 2 * v - 1 if spin_map == "2v-1" else 1 - 2 * v
        assert ref.binary_polynomial(k, v) == pytest.approx(ref.spin_polynomial(j, s), abs=1e-10)
    np.testing.assert_allclose(from_binary_basis(k, spin_map=spin_map), j, **EXACT)
    np.testing.assert_allclose(to_binary_basis(from_binary_basis(j, spin_map=spin_map), spin_map=spin_map), j, **EXACT)


@pytest.mark.parametrize("spin_map", ["2v-1", "1-2v"])
def test_binary_basis_of_a_model_energy(spin_map):
    """The {0,1} polynomial of an RBM's couplings reproduces its energy at every v."""
    n = 5
    model = rbm(n, 3, seed=1)
    k = np.asarray(to_binary_basis(eqx.filter_jit(ebmflow.couplings)(model), spin_map=spin_map))
    neg_e = ref.neg_energies(model)
    for bits in range(2**n):
        v = np.array([ref.bit(bits, i) for i in range(n)], dtype=float)
        s = 2 * v - 1 if spin_map == "2v-1" else 1 - 2 * v
        assert ref.binary_polynomial(k, v) == pytest.approx(neg_e[ref.index(s)], abs=1e-10)


def test_binary_basis_batches():
    j = np.random.default_rng(5).normal(size=(3, 8))
    np.testing.assert_allclose(
        to_binary_basis(j), np.stack([to_binary_basis(row) for row in j]), **EXACT
    )
