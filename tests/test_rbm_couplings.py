"""Couplings of RBMs beyond enumeration (THEORY §10): the large-N method against exact enumeration and quad."""

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from scipy import integrate

import ebmflow
from ebmflow._tree import cast_parameters
from ebmflow.effective._rbm_couplings import _kernel, fold, potts_form, quadrature


def binary_rbm(n, m=50, seed=0, biases=False):
    """THEORY §10's benchmark: a {0,1} RBM with weights ~ N(0, 9/n), biases 0 or N(0, 1), in spin form."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 3 / math.sqrt(n), (m, n))
    b, c = (rng.normal(size=n), rng.normal(size=m)) if biases else (np.zeros(n), np.zeros(m))
    return ebmflow.RBM.from_bernoulli(w, b, c), (w, b, c)


def potts_rbm(n, q, m=30, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return ebmflow.PottsRBM(rng.normal(0, scale / math.sqrt(n * q), (m, n, q)), rng.normal(0, 0.5, (n, q)),
                            rng.normal(0, 0.5, m))


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def _pairs(x):
    return x[np.triu_indices(x.shape[0], 1)]


# ----------------------------------------------------------------------------- the method itself


def _gaussian_reference(rbm, sites):
    """THEORY §10 written out: T(μ_I) by scipy's adaptive quad per hidden unit, then inclusion–exclusion."""
    form = potts_form(rbm)
    w, c = np.asarray(form.weights), np.asarray(form.hidden_bias)
    m, n, q = w.shape
    f = (lambda x: np.logaddexp(0, x)) if rbm.hidden == "bernoulli" else (lambda x: np.logaddexp(x, -x))
    t = np.zeros((q,) * len(sites))
    for colours in itertools.product(range(q), repeat=len(sites)):
        for a in range(m):
            sigma = math.sqrt(sum((w[a, site] ** 2).mean() for site in range(n) if site not in sites))
            loc = c[a] + sum(w[a, i, mu] for i, mu in zip(sites, colours))

            def g(z, loc=loc, sigma=sigma):
                return f(loc + sigma * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)

            t[colours] += integrate.quad(g, -12, 12, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
    out = np.zeros_like(t)
    k = len(sites)
    for r in range(k + 1):
        for averaged in itertools.combinations(range(k), r):
            out = out + (-1) ** r * t.mean(axis=averaged, keepdims=True)
    return out


@pytest.mark.parametrize("hidden", ["bernoulli", "spin"])
def test_gaussian_tensors_match_quadrature_written_out(hidden):
    rng = np.random.default_rng(1)
    rbm = ebmflow.PottsRBM(rng.normal(0, 0.6, (3, 6, 3)), rng.normal(0, 0.3, (6, 3)), rng.normal(0, 0.5, 3), hidden)
    got = ebmflow.rbm_couplings(rbm, 3, sites=[(0, 2, 5)], nodes=61)[0]
    # the rule's truncation at |z| = 5 (Gaussian mass 6e-7 outside) bounds the agreement
    np.testing.assert_allclose(got, _gaussian_reference(rbm, (0, 2, 5)), rtol=0, atol=1e-7)
    pairs = ebmflow.rbm_couplings(rbm, 2)
    np.testing.assert_allclose(pairs[1, 4], _gaussian_reference(rbm, (1, 4)), rtol=0, atol=1e-6)  # default nodes
    np.testing.assert_allclose(pairs[4, 1], pairs[1, 4].T, rtol=0, atol=0)
    assert np.all(pairs[2, 2] == 0)


@pytest.mark.parametrize("hidden", ["bernoulli", "spin"])
def test_fields_and_both_elementwise_forms_match_quadrature_written_out(hidden):
    """Fields (the ``- x`` of ``ln 2cosh`` included), and the direct form of strong weights beside the factored one."""
    rng = np.random.default_rng(4)
    rbm = ebmflow.PottsRBM(rng.normal(0, 0.5, (4, 5, 3)), rng.normal(0, 0.3, (5, 3)), rng.normal(0, 0.5, 4), hidden)
    fields = ebmflow.rbm_couplings(rbm, 1, nodes=61)
    bias = np.asarray(rbm.zero_sum_gauge().visible_bias)
    for i in (0, 3):
        # fields keep the rule's truncation at |z| = 5 (relative 6e-7) that the projection removes from pairs
        np.testing.assert_allclose(fields[i] - bias[i], _gaussian_reference(rbm, (i,)), rtol=0, atol=5e-7)
    form = potts_form(rbm)
    z, w = (jnp.asarray(a) for a in fold(*quadrature(1.0, hidden, 61)))
    for sites in ([(1,)], [(0, 4), (2, 3)], [(0, 1, 3)]):
        factored, direct = (np.asarray(_kernel(form, jnp.asarray(sites), None, z, w, d)) for d in (False, True))
        np.testing.assert_allclose(factored, direct, rtol=0, atol=1e-12)


def test_default_quadrature_error_is_below_the_papers_rule():
    """The fitted trapezoid against a 300-node Gauss–Hermite reference, beside the papers' 21-point rule."""
    x, wts = np.polynomial.hermite.hermgauss(300)
    m = np.linspace(-10, 10, 201)[:, None]
    softplus = lambda u: np.logaddexp(0, u)  # noqa: E731
    for sigma in (0.5, 1.0, 2.0, 3.0):
        exact = (softplus(m + sigma * math.sqrt(2) * x) * wts).sum(-1) / math.sqrt(math.pi)
        z, w = quadrature(sigma, "bernoulli")
        ours = np.abs((softplus(m + sigma * z) * w).sum(-1) - exact).max()
        zp = np.linspace(-5, 5, 21)
        wp = np.full(21, 0.5) * np.exp(-zp**2 / 2) / math.sqrt(2 * math.pi)
        wp[[0, -1]] /= 2
        papers = np.abs((softplus(m + sigma * zp) * wp).sum(-1) - exact).max()
        assert ours <= papers and ours < 1e-5, (sigma, ours, papers)


# ----------------------------------------------------------------------------- accuracy against enumeration


def test_exact_method_is_the_closed_form():
    rbm, _ = binary_rbm(8, m=5, seed=2, biases=True)
    w, a, b = (np.asarray(x) for x in (rbm.weights, rbm.visible_bias, rbm.hidden_bias))
    pairs = ebmflow.rbm_couplings(rbm, 2, method="exact")
    fields = ebmflow.rbm_couplings(rbm, 1, method="exact")
    f = ref.ln2cosh
    for i, j in [(0, 1), (2, 7), (5, 6)]:
        np.testing.assert_allclose(pairs[i, j], ref.rbm_coupling_closed_form(w, a, b, ebmflow.subset(i, j), f),
                                   rtol=0, atol=1e-10)
    np.testing.assert_allclose(fields[3], ref.rbm_coupling_closed_form(w, a, b, ebmflow.subset(3), f), atol=1e-10)
    j = np.asarray(ebmflow.couplings(rbm))
    np.testing.assert_allclose(pairs[2, 5], j[ebmflow.subset(2, 5)], rtol=0, atol=1e-12)
    triplets = ebmflow.rbm_couplings(rbm, 3, sites=[(0, 3, 6)], method="exact")
    np.testing.assert_allclose(triplets, [j[ebmflow.subset(0, 3, 6)]], rtol=0, atol=1e-12)


def test_binary_accuracy_falls_with_n():
    """THEORY §10: pairs within ~1.5 % (n = 10) and ~0.9 % (n = 14), fields within 1 %; measured here."""
    errors = []
    for n in (10, 14):
        for biases in (False, True):
            rbm, _ = binary_rbm(n, seed=n, biases=biases)
            exact_pairs = _pairs(ebmflow.rbm_couplings(rbm, 2, method="exact"))
            exact_fields = ebmflow.rbm_couplings(rbm, 1, method="exact")
            pair_error = rel(_pairs(ebmflow.rbm_couplings(rbm, 2)), exact_pairs)
            field_error = rel(ebmflow.rbm_couplings(rbm, 1), exact_fields)
            assert pair_error <= 0.02 and field_error <= 0.01, (n, biases, pair_error, field_error)
            errors.append(pair_error)
    assert errors[2] < errors[0] and errors[3] < errors[1]  # n = 14 better than n = 10, for both bias settings


@pytest.mark.parametrize("q, sizes", [(3, (5, 8)), (4, (4, 7))])
def test_potts_accuracy_falls_with_n(q, sizes):
    """Mean relative error over 4 random RBMs per size (one RBM's error fluctuates with its draw)."""
    errors = []
    for n in sizes:
        per_model = []
        for seed in range(4):
            rbm = potts_rbm(n, q, seed=100 * n + seed)
            exact = ebmflow.rbm_couplings(rbm, 2, method="exact")
            iu = np.triu_indices(n, 1)
            per_model.append(rel(ebmflow.rbm_couplings(rbm, 2)[iu], exact[iu]))
        errors.append(np.mean(per_model))
    assert errors[1] < errors[0] and errors[1] < 0.03, errors


def test_triplets_against_enumeration():
    rbm, _ = binary_rbm(10, seed=3, biases=True)
    sites = [(0, 1, 2), (3, 5, 9), (2, 4, 8), (1, 6, 7)]
    exact = ebmflow.rbm_couplings(rbm, 3, sites=sites, method="exact")
    approx = ebmflow.rbm_couplings(rbm, 3, sites=sites)
    assert rel(approx, exact) < 0.1  # triplets are O(w³), so their relative error is larger than the pairs'
    potts = potts_rbm(5, 3, seed=4)
    exact = ebmflow.rbm_couplings(potts, 3, sites=[(0, 1, 2), (1, 3, 4)], method="exact")
    assert rel(ebmflow.rbm_couplings(potts, 3, sites=[(0, 1, 2), (1, 3, 4)]), exact) < 0.15


def planted_outliers(n, q, m, seed, factor, units=4):
    """A Potts RBM whose weight vectors have similar norms, except site 2's in the first ``units`` hidden units."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(m, n, q))
    d -= d.mean(-1, keepdims=True)
    w = d / np.linalg.norm(d, axis=-1, keepdims=True) * rng.uniform(0.25, 0.35, (m, n, 1))
    w[:units, 2] *= factor
    return ebmflow.PottsRBM(w, rng.normal(0, 0.3, (n, q)), rng.normal(0, 0.3, m))


def test_mixture_helps_where_sites_dominate_and_changes_nothing_without_outliers():
    iu = np.triu_indices(10, 1)
    for seed in (1, 2):
        rbm = planted_outliers(10, 3, 12, seed, factor=6.0)
        exact = ebmflow.rbm_couplings(rbm, 2, method="exact")[iu]
        gauss = rel(ebmflow.rbm_couplings(rbm, 2)[iu], exact)
        mixture = rel(ebmflow.rbm_couplings(rbm, 2, method="mixture")[iu], exact)
        assert mixture < 0.2 * gauss, (gauss, mixture)  # measured: 0.6 % -> 0.02 %
    for seed in range(3):  # plain random RBMs: no site stands out, so no outliers and the same couplings
        plain = potts_rbm(10, 3, m=20, seed=seed)
        np.testing.assert_array_equal(ebmflow.rbm_couplings(plain, 2, method="mixture"),
                                      ebmflow.rbm_couplings(plain, 2))


def test_float32_and_large_arguments():
    rbm = potts_rbm(6, 4, seed=7)
    f64 = ebmflow.rbm_couplings(rbm, 2)
    f32 = ebmflow.rbm_couplings(cast_parameters(rbm, jnp.float32), 2)
    np.testing.assert_allclose(f32, f64, rtol=0, atol=2e-5 * np.abs(f64).max())  # float32 rounding
    big = ebmflow.PottsRBM(np.asarray(rbm.weights) * 60, np.asarray(rbm.visible_bias), np.asarray(rbm.hidden_bias))
    values = ebmflow.rbm_couplings(big, 2)  # e^x of the hidden inputs overflows: the factored form does not
    assert np.all(np.isfinite(values))
    iu = np.triu_indices(6, 1)
    exact = ebmflow.rbm_couplings(big, 2, method="exact")
    assert rel(values[iu], exact[iu]) < 0.2


def test_errors_are_clear():
    rbm = potts_rbm(4, 3)
    with pytest.raises(ValueError, match=r"method must be 'gauss', 'mixture' or 'exact'; got 'fast'"):
        ebmflow.rbm_couplings(rbm, 2, method="fast")
    with pytest.raises(ValueError, match=r"order 3 needs sites"):
        ebmflow.rbm_couplings(rbm, 3)
    with pytest.raises(ValueError, match=r"sites must be 2-tuples for order 2"):
        ebmflow.rbm_couplings(rbm, 2, sites=[(0, 1, 2)])
    with pytest.raises(ValueError, match=r"sites must be distinct indices in \[0, 4\)"):
        ebmflow.rbm_couplings(rbm, 2, sites=[(0, 4)])
    with pytest.raises(TypeError, match=r"takes an ebmflow.RBM or PottsRBM; got Ising"):
        ebmflow.rbm_couplings(ebmflow.Ising(np.zeros(3), np.zeros(3)), 2)
    with pytest.raises(ValueError, match=r"nodes must be an int >= 3"):
        ebmflow.rbm_couplings(rbm, 2, nodes=1)
    large = ebmflow.RBM(np.zeros((3, 60)), np.zeros(60), np.zeros(3))
    with pytest.raises(ebmflow.MemoryBudgetError, match=r"couplings for n=60 .* needs an estimated 16 EiB"):
        ebmflow.rbm_couplings(large, 2, method="exact")
    assert ebmflow.rbm_couplings(large, 2).shape == (60, 60)  # no enumeration needed


def test_large_n_spaces_exist_without_enumeration():
    rng = np.random.default_rng(8)
    rbm = ebmflow.PottsRBM(rng.normal(0, 0.05, (20, 150, 5)), np.zeros((150, 5)), np.zeros(20))
    pairs = ebmflow.rbm_couplings(rbm, 2)
    assert pairs.shape == (150, 150, 5, 5) and np.all(np.isfinite(pairs))
    np.testing.assert_allclose(pairs.sum(2), 0, atol=1e-12)  # zero sum along each colour axis
    np.testing.assert_allclose(pairs.sum(3), 0, atol=1e-12)
    fields = ebmflow.rbm_couplings(rbm, 1)
    assert fields.shape == (150, 5)
    np.testing.assert_allclose(fields.sum(1), 0, atol=1e-12)
