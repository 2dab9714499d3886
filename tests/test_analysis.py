"""Fixed points and their stability (THEORY §3-5), against `reference_analysis.py`.

Every number is checked against NumPy: closed-form gradients and Hessians over all
states, central differences, Walsh couplings through the explicit Hadamard matrix
and the closed form of the ``W = 0`` saddle. Eager ebmflow calls compile every
primitive, so each test reuses a few model shapes and module-scoped results.
"""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import reference_analysis as ra
from models import random_probs, rbm

import ebmflow

EXACT = {"rtol": 0, "atol": 1e-10}
# Central differences at h = 1e-5 of a gradient with O(1) third derivatives: ~1e-10 truncation, ~1e-11 rounding.
FD = {"rtol": 0, "atol": 1e-8}

log_probs = eqx.filter_jit(ebmflow.log_probs)


def _target(n, seed):
    return ebmflow.Target.from_probs(random_probs(n, seed=seed))


# ----------------------------------------------------------------------------- teacher = student (THEORY §5)


@pytest.fixture(scope="module")
def teacher_point():
    """THEORY §5's example: an RBM with n = 6, M = 20 spin hidden units (P = 146) as its own target."""
    teacher = ebmflow.RBM.init(jax.random.PRNGKey(0), 6, 20, scale=0.5, bias_scale=0.3)
    target = ebmflow.Target.from_model(teacher)
    report = ebmflow.stability(teacher, target, eigenvectors=True)
    r = ra.of(teacher)
    p = ra.probs(r.neg_energies(r.theta))
    return dict(
        model=teacher, target=target, report=report, r=r, p=p,
        hessian=ra.hessian(r, r.theta, p), jacobian=ra.coupling_jacobian_fd(r, r.theta),
    )


def test_teacher_student_counts(teacher_point):
    """rank G = 63 = #stable, #neutral = P - rank G = 83, no unstable direction, ∇²L = GᵀCG (THEORY §5)."""
    rep = teacher_point["report"]
    assert rep.kind == "data-consistent" and rep.method == "dense"
    assert (rep.n_params, rep.n_couplings) == (146, 63)
    assert (rep.rank, rep.n_stable, rep.n_neutral, rep.n_unstable) == (63, 63, 83, 0)
    assert rep.generic_rank == 63
    assert rep.decomposition["relative_residual"] < 1e-8
    assert rep.decomposition["curvature_norm"] < 1e-10  # m^θ = m^D: the second term of ∇²L vanishes
    assert abs(rep.kl) < 1e-12 and rep.grad_norm < 1e-10
    np.testing.assert_allclose(rep.moment_mismatch, 0, atol=1e-12)


def test_teacher_student_against_reference(teacher_point):
    """The same counts from NumPy: finite-difference G of 2^-n H (-E), and the closed-form Hessian."""
    rep, g, h, p = (teacher_point[k] for k in ("report", "jacobian", "hessian", "p"))
    sigma = np.linalg.svd(g, compute_uv=False)
    assert ra.rank(g) == 63 and g.shape[1] - ra.rank(g) == 83
    assert sigma[-1] > 1e-3 * sigma[0]  # far from the rank threshold: the count is not a tolerance artefact
    np.testing.assert_allclose(rep.singular_values, sigma, rtol=0, atol=1e-8)
    # ∇²L = Gᵀ C G at a data-consistent point, C the covariance of the Walsh functions under p.
    chi = ra.parities(ra.states(6), range(1, 64))
    mean = p @ chi
    cov = (chi * p[:, None]).T @ chi - np.outer(mean, mean)
    np.testing.assert_allclose(g.T @ cov @ g, h, rtol=0, atol=1e-8)
    lam = np.linalg.eigvalsh(h)
    np.testing.assert_allclose(rep.eigenvalues, lam, rtol=0, atol=1e-10 * np.abs(lam).max())
    t = 1e-9 * np.abs(lam).max()
    assert ((lam > t).sum(), (np.abs(lam) <= t).sum(), (lam < -t).sum()) == (63, 83, 0)
    # the counts are not a tolerance artefact: the spectrum has a wide gap around the threshold
    assert lam[lam > t].min() > 100 * t and np.abs(lam[np.abs(lam) <= t]).max() < 1e-4 * t
    dec = rep.decomposition
    assert dec["hessian_norm"] == pytest.approx(np.linalg.norm(h), rel=1e-10)
    assert dec["gauss_newton_norm"] == pytest.approx(np.linalg.norm(g.T @ cov @ g), rel=1e-8)


def test_gauss_newton_term_without_the_covariance_matrix():
    """``Gᵀ C G`` from the basis functions' values against the explicit covariance of the Walsh functions."""
    from ebmflow.analysis._stability import gauss_newton

    n, rng = 5, np.random.default_rng(11)
    p = random_probs(n, seed=12)
    g = rng.normal(size=(2**n - 1, 7))
    chi = ra.parities(ra.states(n), range(1, 2**n))
    mean = p @ chi
    cov = (chi * p[:, None]).T @ chi - np.outer(mean, mean)
    np.testing.assert_allclose(gauss_newton(g, p, ebmflow.Spins(n)), g.T @ cov @ g, rtol=0, atol=1e-12)


def test_neutral_directions(teacher_point):
    """Neutral eigenvectors lie in ker G and move the couplings only at O(ε²); stable ones at O(ε)."""
    rep, r, g, h = (teacher_point[k] for k in ("report", "r", "jacobian", "hessian"))
    vec, lam = rep.eigenvectors, rep.eigenvalues
    assert vec.shape == (146, 146)
    np.testing.assert_allclose(vec.T @ vec, np.eye(146), rtol=0, atol=1e-10)
    np.testing.assert_allclose(h @ vec, vec * lam, rtol=0, atol=1e-10)  # H v = λ v with the reference H
    neutral = vec[:, np.abs(lam) <= rep.thresholds["eig_rtol"] * np.abs(lam).max()]
    assert neutral.shape[1] == rep.n_neutral == 83
    assert rep.neutral["max_g_v"] < 1e-8
    assert np.linalg.norm(g @ neutral, axis=0).max() < 1e-8  # FD G is exact to ~1e-10
    eps = np.array([1e-1, 1e-2, 1e-3])
    j0 = ra.couplings(r, r.theta)[1:]

    def changes(v):
        return np.array([np.linalg.norm(ra.couplings(r, r.theta + e * v)[1:] - j0) for e in eps])

    def slope(v):
        return np.polyfit(np.log(eps), np.log(changes(v)), 1)[0]

    slopes = np.array([slope(v) for v in neutral.T])
    np.testing.assert_allclose(slopes, 2, atol=0.1)
    assert slope(vec[:, -1]) == pytest.approx(1, abs=0.1)  # the stiffest stable direction: first order
    # the report's own O(ε²) probe, along its first neutral eigenvector
    assert rep.neutral["epsilons"] == list(eps)
    np.testing.assert_allclose(rep.neutral["coupling_changes"], changes(neutral[:, 0]), rtol=1e-6)
    assert rep.neutral["slope"] == pytest.approx(2, abs=0.1)


def test_report_serialises_and_summarises(teacher_point):
    rep = teacher_point["report"]
    d = json.loads(json.dumps(rep.to_dict()))
    assert "eigenvectors" not in d
    assert d["kind"] == "data-consistent" and d["rank"] == 63 and d["n_neutral"] == 83
    assert len(d["eigenvalues"]) == 146 and d["thresholds"]["eig_rtol"] == rep.thresholds["eig_rtol"]
    summary = rep.summary()
    assert "data-consistent" in summary and "63 stable, 83 neutral, 0 unstable" in summary


# ----------------------------------------------------------------------------- the W = 0 saddle (THEORY §4)


@pytest.mark.parametrize("c", [0.0, 0.7])
def test_w0_saddle(c):
    """Stationary for any target, and a saddle with λ_min = -(1 - tanh² c) λ_max(C^D - C^indep)."""
    p = random_probs(5, seed=3)  # correlated: connected pair correlations of order 1e-2
    target = ebmflow.Target.from_probs(p)
    model = ebmflow.analysis.w0_saddle(target, 3, c)
    assert isinstance(model, ebmflow.RBM) and model.hidden == "spin" and model.weights.shape == (3, 5)
    m = ref.moments(p)
    np.testing.assert_array_equal(model.weights, 0)
    np.testing.assert_allclose(model.hidden_bias, c, **EXACT)
    np.testing.assert_allclose(model.visible_bias, np.arctanh(m[[1, 2, 4, 8, 16]]), **EXACT)
    r = ra.of(model)
    assert np.linalg.norm(ra.gradient(r, r.theta, p)) < 1e-12
    connected = ra.connected_pairs(p)
    assert np.trace(connected) == 0 and np.linalg.eigvalsh(connected)[-1] > 1e-3
    predicted = -(1 - np.tanh(c) ** 2) * np.linalg.eigvalsh(connected)[-1]
    assert predicted < 0
    assert np.linalg.eigvalsh(ra.hessian(r, r.theta, p))[0] == pytest.approx(predicted, abs=1e-10)
    assert np.linalg.eigvalsh(np.asarray(ebmflow.hessian(model, target)))[0] == pytest.approx(predicted, abs=1e-10)
    assert ebmflow.analysis.w0_saddle_eigenvalue(target, 3, c) == pytest.approx(predicted, abs=1e-12)
    # a spurious point: m^θ ≠ m^D survives because G lost rank (only the fields move J at first order)
    rep = ebmflow.stability(model, target)
    assert rep.kind == "spurious" and rep.n_unstable >= 1
    assert rep.eigenvalues[0] == pytest.approx(predicted, abs=1e-10)
    assert rep.rank == ra.rank(ra.coupling_jacobian_fd(r, r.theta)) == 5 < rep.generic_rank
    assert rep.decomposition["relative_residual"] < 1e-10


def test_w0_saddle_with_one_hidden_unit():
    """One unit: the prediction holds at c = 0; at c != 0 the true λ_min is less negative, and it is refused."""
    p = random_probs(5, seed=3)
    target = ebmflow.Target.from_probs(p)
    lowest = {}
    for c in (0.0, 0.7):
        r = ra.of(ebmflow.analysis.w0_saddle(target, 1, c))
        assert np.linalg.norm(ra.gradient(r, r.theta, p)) < 1e-12
        lowest[c] = np.linalg.eigvalsh(ra.hessian(r, r.theta, p))[0]
    predicted = -np.linalg.eigvalsh(ra.connected_pairs(p))[-1]
    assert ebmflow.analysis.w0_saddle_eigenvalue(target, 1, 0.0) == pytest.approx(predicted, abs=1e-12)
    assert lowest[0.0] == pytest.approx(predicted, abs=1e-10)
    assert (1 - np.tanh(0.7) ** 2) * predicted < lowest[0.7] - 1e-4  # the formula would be wrong here
    with pytest.raises(ValueError, match=r"holds for n_hidden >= 2, or c = 0; got n_hidden = 1 and c = 0\.7"):
        ebmflow.analysis.w0_saddle_eigenvalue(target, 1, 0.7)


# ----------------------------------------------------------------------------- Hessian


HESSIAN_MODELS = {
    "rbm": lambda: rbm(5, 3, seed=1),
    "ising": lambda: ebmflow.Ising(*(0.4 * np.random.default_rng(2).normal(size=k) for k in (5, 10))),
    "hoi": lambda: ebmflow.HigherOrderIsing(
        5, ebmflow.HigherOrderIsing.subsets_up_to(5, 3), 0.4 * np.random.default_rng(4).normal(size=25)
    ),
}


@pytest.mark.parametrize("name", HESSIAN_MODELS)
def test_hessian(name):
    """``ebmflow.hessian`` = central differences of the NumPy gradient = the closed form; penalty adds penalty·I."""
    model = HESSIAN_MODELS[name]()
    target = _target(5, seed=5)
    p = np.asarray(target.probs)
    r = ra.of(model)
    np.testing.assert_array_equal(np.asarray(ebmflow.flatten(model)[0]), r.theta)  # same parameter order
    h = np.asarray(ebmflow.hessian(model, target))
    np.testing.assert_allclose(h, ra.hessian_fd(r, r.theta, p), **FD)
    np.testing.assert_allclose(h, ra.hessian(r, r.theta, p), **EXACT)
    h_pen = np.asarray(ebmflow.hessian(model, target, penalty=0.3))
    np.testing.assert_allclose(h_pen - h, 0.3 * np.eye(r.theta.size), **EXACT)
    np.testing.assert_allclose(h_pen, ra.hessian_fd(r, r.theta, p, penalty=0.3), **FD)


# ----------------------------------------------------------------------------- full coupling model


def test_walsh_model_at_target_couplings():
    """G = I: no neutral direction, every direction stable, rank 2^n - 1, data-consistent (THEORY §3)."""
    p = random_probs(5, seed=6)
    target = ebmflow.Target.from_probs(p)
    j_star = ref.hadamard(5) @ np.log(p) / 2**5
    model = ebmflow.WalshModel(j_star[1:])
    rep = ebmflow.stability(model, target)
    assert rep.kind == "data-consistent" and rep.kl < 1e-12
    assert (rep.rank, rep.generic_rank, rep.n_couplings, rep.n_params) == (31, 31, 31, 31)
    assert (rep.n_stable, rep.n_neutral, rep.n_unstable) == (31, 0, 0)
    assert rep.neutral is None
    np.testing.assert_allclose(rep.singular_values, 1, **EXACT)
    # ∇²L = C, the covariance of the Walsh functions under p_D
    chi = ra.parities(ra.states(5), range(1, 32))
    mean = p @ chi
    cov = (chi * p[:, None]).T @ chi - np.outer(mean, mean)
    np.testing.assert_allclose(rep.eigenvalues, np.linalg.eigvalsh(cov), **EXACT)
    # with a penalty the point is no longer stationary (∇L = penalty·J*), and ∇²L gains penalty·I
    rep = ebmflow.stability(model, target, penalty=0.1)
    assert rep.kind == "not stationary"
    assert rep.grad_norm == pytest.approx(0.1 * np.linalg.norm(j_star[1:]), rel=1e-10)
    np.testing.assert_allclose(rep.eigenvalues, np.linalg.eigvalsh(cov) + 0.1, **EXACT)
    assert rep.decomposition["relative_residual"] < 1e-10


# ----------------------------------------------------------------------------- spurious point of a pairwise model


@pytest.mark.slow
def test_pairwise_student_on_three_body_target_is_spurious():
    """The Ising fixed point matches orders 1-2 only: stationary, KL > 0, rank 15 < 31 (THEORY §4)."""
    teacher = ebmflow.targets.random_ising(jax.random.PRNGKey(1), 5, {1: 0.2, 2: 0.3, 3: 0.4})
    target = ebmflow.Target.from_model(teacher)
    p = np.asarray(target.probs)
    student = ebmflow.Ising(np.zeros(5), np.zeros(10))
    sol = ebmflow.flow(student, target, 1e4, steady_tol=1e-9)
    assert bool(sol.ok), sol.message
    end = jax.tree_util.tree_map(lambda x: x[-1], sol.models)
    fp = ebmflow.fixed_point(end, target)
    assert fp.converged, fp.message
    r = ra.of(fp.model)
    assert np.linalg.norm(ra.gradient(r, r.theta, p)) < 1e-9
    mismatch = ra.order_norms(ref.moments(ra.probs(r.neg_energies(r.theta))) - ref.moments(p))
    np.testing.assert_allclose(mismatch[:3], 0, atol=1e-9)  # the maximum-entropy fit of orders 1-2
    assert np.all(mismatch[3:] > 1e-2)
    rep = ebmflow.stability(fp.model, target)
    assert rep.kind == "spurious" and rep.kl > 1e-3
    np.testing.assert_allclose(rep.moment_mismatch, mismatch, atol=1e-9)
    assert rep.rank == rep.generic_rank == 5 + 10 < 31
    assert ra.rank(ra.coupling_jacobian_fd(r, r.theta)) == 15
    assert rep.n_unstable == 0  # a convex model: the spurious point is a minimum


# ----------------------------------------------------------------------------- fixed_point


def test_fixed_point_converges_near_a_stationary_point():
    teacher = rbm(5, 3, seed=7)
    target = ebmflow.Target.from_model(teacher)
    p = np.asarray(target.probs)
    noise = np.random.default_rng(8)
    start = jax.tree_util.tree_map(lambda x: x + 1e-4 * noise.normal(size=x.shape), teacher)
    r0 = ra.of(start)
    assert np.linalg.norm(ra.gradient(r0, r0.theta, p)) > 1e-6  # really perturbed
    fp = ebmflow.fixed_point(start, target, tol=1e-10)
    assert fp.converged and fp.message.startswith("converged"), fp.message
    assert fp.grad_norm <= 1e-10 and fp.steps >= 1
    r = ra.of(fp.model)
    assert np.linalg.norm(ra.gradient(r, r.theta, p)) <= 1e-10
    assert ref.kl(r.neg_energies(r.theta), p) < 1e-12  # the stationary points near the teacher fit it exactly
    assert np.abs(r.theta - r0.theta).max() < 1e-2


def test_fixed_point_reports_failure():
    target = ebmflow.Target.from_model(rbm(5, 3, seed=7))
    far = rbm(5, 3, seed=9, scale=1.5, bias_scale=1.0)
    fp = ebmflow.fixed_point(far, target, max_steps=1)
    assert not fp.converged
    assert fp.grad_norm > 1e-10
    assert fp.message.startswith("not converged") and "max_steps" in fp.message
    r = ra.of(fp.model)
    assert np.linalg.norm(ra.gradient(r, r.theta, np.asarray(target.probs))) == pytest.approx(fp.grad_norm, rel=1e-8)


def test_fixed_point_reports_a_stall():
    """A tol below rounding: Levenberg–Marquardt ends on its own step criterion, and says so."""
    target = ebmflow.Target.from_model(rbm(5, 3, seed=7))
    fp = ebmflow.fixed_point(rbm(5, 3, seed=7), target, tol=1e-30)
    assert not fp.converged and fp.steps < 256  # stopped before max_steps
    assert fp.message.startswith("not converged") and "stopped making progress" in fp.message, fp.message
    r = ra.of(fp.model)
    assert np.linalg.norm(ra.gradient(r, r.theta, np.asarray(target.probs))) < 1e-12  # at rounding level


# ----------------------------------------------------------------------------- Lanczos


def _mlp():
    model = ebmflow.MLPEnergy.init(jax.random.PRNGKey(4), 4, widths=(3,), activation="tanh")
    biases = [jnp.array([0.1, -0.2, 0.3]), jnp.array([0.5])]  # init zeroes them
    return eqx.tree_at(lambda m: [layer.bias for layer in m.layers], model, biases)


LANCZOS_MODELS = {"rbm": (lambda: rbm(5, 3, seed=1), 5), "mlp": (_mlp, 4)}


@pytest.mark.parametrize("name", LANCZOS_MODELS)
def test_lanczos_extremes(name):
    """Above ``dense_limit`` parameters only the extreme eigenvalues come back, from Lanczos on H·v."""
    make_model, n = LANCZOS_MODELS[name]
    model = make_model()
    target = _target(n, seed=10)
    r = ra.of(model)
    lam = np.linalg.eigvalsh(ra.hessian(r, r.theta, np.asarray(target.probs)))
    assert r.theta.size > 10
    rep = ebmflow.stability(model, target, dense_limit=10)
    assert rep.method == "lanczos"
    assert rep.n_stable is rep.n_neutral is rep.n_unstable is None
    assert rep.decomposition is None and rep.neutral is None and rep.eigenvectors is None
    np.testing.assert_allclose(rep.eigenvalues, np.concatenate([lam[:6], lam[-6:]]), rtol=0, atol=1e-8)
    assert "Lanczos" in rep.summary()
    json.dumps(rep.to_dict())
    smallest, largest = ebmflow.analysis.extreme_eigenvalues(model, target, penalty=0.2, k=3)
    np.testing.assert_allclose(smallest, lam[:3] + 0.2, rtol=0, atol=1e-8)
    np.testing.assert_allclose(largest, lam[-3:] + 0.2, rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------- duplicated hidden units


def test_duplicate_units_log_probs():
    model = rbm(5, 3, seed=11)
    for copies in (1, 2, 3):
        dup = ebmflow.analysis.duplicate_units(model, copies)
        assert dup.n_hidden == 3 * copies and dup.hidden == model.hidden
        w, a, b = (np.asarray(x) for x in (model.weights, model.visible_bias, model.hidden_bias))
        # every hidden term counted `copies` times
        neg_e = [
            a @ s + copies * sum(ref.ln2cosh(b[u] + w[u] @ s) for u in range(3)) for s in ref.states(5)
        ]
        np.testing.assert_allclose(log_probs(dup), ref.log_probs(np.array(neg_e)), **EXACT)
    with pytest.raises(ValueError, match="copies must be a positive int"):
        ebmflow.analysis.duplicate_units(model, 0)


def test_duplicate_units_stay_identical_under_the_flow():
    dup = ebmflow.analysis.duplicate_units(rbm(5, 3, seed=12, scale=0.3), 2)
    sol = ebmflow.flow(dup, _target(5, seed=13), 2.0, ts=np.linspace(0, 2.0, 5))
    w, b = np.asarray(sol.models.weights), np.asarray(sol.models.hidden_bias)  # (T, 6, 5), (T, 6)
    assert np.abs(w[-1] - w[0]).max() > 1e-2  # it moved
    np.testing.assert_allclose(w[:, 0::2], w[:, 1::2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b[:, 0::2], b[:, 1::2], rtol=0, atol=1e-12)


def test_duplicate_units_lose_rank():
    """A duplicated RBM fitted exactly (its own target) is stationary with rank G below the generic rank."""
    original = rbm(5, 3, seed=14)
    dup = ebmflow.analysis.duplicate_units(original, 2)  # P = 41 >= 31: generically full rank
    target = ebmflow.Target.from_model(dup)
    rep = ebmflow.stability(dup, target)
    assert rep.kind == "data-consistent"
    assert rep.generic_rank == 31 and rep.rank < rep.generic_rank
    r, r_orig = ra.of(dup), ra.of(original)
    g = ra.coupling_jacobian_fd(r, r.theta)
    assert rep.rank == ra.rank(g) == ra.rank(ra.coupling_jacobian_fd(r_orig, r_orig.theta)) <= 23
    generic = ra.RBMRef(*(np.random.default_rng(15).normal(scale=0.5, size=s) for s in ((6, 5), 5, 6)))
    assert ra.rank(ra.coupling_jacobian_fd(generic, generic.theta)) == 31
    assert rep.n_neutral == 41 - rep.rank and rep.n_unstable == 0


# ----------------------------------------------------------------------------- batches


def test_classify_batch():
    n, m = 5, 3
    keys = jax.random.split(jax.random.PRNGKey(16), 4)
    models = eqx.filter_vmap(lambda k: ebmflow.RBM.init(k, n, m, scale=0.1))(keys)
    models = eqx.tree_at(lambda mod: mod.weights, models, models.weights.at[2].set(jnp.nan))
    target = _target(n, seed=17)
    batch = ebmflow.flow_batch(models, target, 1.0, ts=np.array([0.0, 1.0]))
    np.testing.assert_array_equal(np.asarray(batch.ok), [True, True, False, True])
    out = ebmflow.classify_batch(batch, target)
    assert out["reports"][2] is None and out["min_eigenvalue"][2] is None and out["rank"][2] is None
    assert out["fractions"]["failed"] == pytest.approx(0.25)
    assert sum(out["fractions"].values()) == pytest.approx(1)
    p = np.asarray(target.probs)
    for i in (0, 1, 3):
        rep = out["reports"][i]
        assert rep.kind in ("data-consistent", "spurious", "not stationary")
        final = ebmflow.RBM(*(np.asarray(x)[i, -1] for x in (batch.models.weights, batch.models.visible_bias,
                                                              batch.models.hidden_bias)))
        r = ra.of(final)
        assert rep.grad_norm == pytest.approx(np.linalg.norm(ra.gradient(r, r.theta, p)), rel=1e-8)
        assert out["min_eigenvalue"][i] == pytest.approx(np.linalg.eigvalsh(ra.hessian(r, r.theta, p))[0], abs=1e-10)
        assert out["rank"][i] == ra.rank(ra.coupling_jacobian_fd(r, r.theta))
        assert out["n_unstable"][i] == rep.n_unstable
    kinds = ["failed" if rep is None else rep.kind for rep in out["reports"]]
    assert out["fractions"] == {k: kinds.count(k) / 4 for k in set(kinds)}


# ----------------------------------------------------------------------------- bad input


def test_bad_input():
    model = rbm(5, 3, seed=1)
    target4 = _target(4, seed=1)
    nan_model = ebmflow.RBM(np.full((3, 5), np.nan), np.zeros(5), np.zeros(3))
    calls = [
        ebmflow.stability, ebmflow.hessian, ebmflow.fixed_point, ebmflow.analysis.extreme_eigenvalues,
    ]
    for call in calls:
        with pytest.raises(ValueError, match="model has n=5 spins but the target has n=4"):
            call(model, target4)
        # never a silent NaN Hessian
        with pytest.raises(ValueError, match=r"RBM\.weights has NaN or infinite entries"):
            call(nan_model, _target(5, seed=1))
    with pytest.raises(ValueError, match=r"copies must be a positive int; got 1\.5"):
        ebmflow.analysis.duplicate_units(model, 1.5)
    target5 = _target(5, seed=1)
    for name in ("eig_rtol", "rank_rtol", "grad_tol", "kl_tol"):
        with pytest.raises(ValueError, match=rf"{name} must be a finite number > 0; got -1"):
            ebmflow.stability(model, target5, **{name: -1})
    for name, bound in (("tol", "> 0"), ("rtol", ">= 0"), ("atol", ">= 0")):
        with pytest.raises(ValueError, match=rf"{name} must be a finite number {bound}; got -1"):
            ebmflow.fixed_point(model, target5, **{name: -1})
    with pytest.raises(ValueError, match=r"max_steps must be a positive int; got 2\.5"):
        ebmflow.fixed_point(model, target5, max_steps=2.5)
    for call in (ebmflow.stability, ebmflow.hessian, ebmflow.fixed_point):
        for penalty in (np.nan, -1.0):
            with pytest.raises(ValueError, match=rf"penalty must be a finite number >= 0; got {penalty!r}"):
                call(model, target5, penalty=penalty)
    for epsilons in ((), (0.1, np.nan), "0.1"):
        with pytest.raises(ValueError, match=r"epsilons must be a non-empty sequence of finite numbers > 0"):
            ebmflow.stability(model, target5, epsilons=epsilons)


class SqrtField(ebmflow.AbstractEnergy):
    """``-E = sqrt(w0) s_0 + w1 s_1``: finite energies at ``w0 = 0``, an infinite derivative there."""

    space: ebmflow.Spins
    w: jax.Array

    def energy(self, s):
        return -(jnp.sqrt(self.w[0]) * s[0] + self.w[1] * s[1])


def test_stability_refuses_a_point_with_a_non_finite_gradient():
    model = SqrtField(ebmflow.Spins(2), jnp.array([0.0, 0.3]))
    target = ebmflow.Target.from_probs(np.full(4, 0.25))
    assert np.isfinite(np.asarray(ebmflow.log_probs(model))).all()  # the energies are finite
    with pytest.raises(ValueError, match=r"stability needs a point where the loss and its gradient are finite; got "
                                         r"KL = [-0-9.e]+, \|\|∇L\|\| = nan"):
        ebmflow.stability(model, target)


def test_analyses_take_a_chunk_size():
    """Streamed in chunks of 4 states, the analyses give the numbers of the one-chunk default."""
    model, target = rbm(5, 3, seed=1), _target(5, seed=1)
    chunked_model = ebmflow.with_chunk_size(model, 4)
    np.testing.assert_allclose(ebmflow.hessian(chunked_model, target), ebmflow.hessian(model, target),
                               rtol=0, atol=1e-12)
    chunked = ebmflow.stability(chunked_model, target)
    np.testing.assert_allclose(chunked.eigenvalues, np.linalg.eigvalsh(ebmflow.hessian(model, target)), atol=1e-12)
    lanczos = ebmflow.analysis.extreme_eigenvalues(chunked_model, target, k=2)
    np.testing.assert_allclose(lanczos[0], chunked.eigenvalues[:2], rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        ebmflow.with_chunk_size(model, 0)


def test_hessian_traced_penalty_and_a_one_sided_fixed_point_criterion():
    """Checks skip traced values: a vmap over the penalty gives the Hessians one by one (exact: penalty·I apart)."""
    model, target = rbm(5, 3, seed=1), _target(5, seed=1)
    stacked = jax.vmap(lambda p: ebmflow.hessian(model, target, p))(jnp.array([0.0, 0.5]))
    h0 = np.asarray(ebmflow.hessian(model, target))
    np.testing.assert_allclose(stacked[0], h0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(stacked[1], h0 + 0.5 * np.eye(h0.shape[0]), rtol=0, atol=1e-14)
    point = ebmflow.fixed_point(model, target, atol=0.0, max_steps=1024)  # rtol alone ends the steps
    assert point.converged and point.grad_norm <= 1e-10
