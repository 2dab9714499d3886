"""Categorical (Potts) variables against the plain references of `reference_potts` (THEORY §9)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import reference_potts as rp

import ebmflow
from ebmflow._tree import cast_parameters

EXACT = {"rtol": 0, "atol": 1e-10}
# Central differences at h = 1e-5: truncation ~h² f''' ~ 1e-10, rounding ~1e-16/h ~ 1e-11.
FD = {"rtol": 0, "atol": 1e-7}
N, Q = 3, 3


class ColourChain(ebmflow.AbstractEnergy):
    """A user-defined energy over colours: ``-E = θ Σ_i [v_i = v_{i+1}]``; it sees one state of ints."""

    space: ebmflow.Potts
    theta: jax.Array

    def energy(self, v):
        return -self.theta * jnp.sum(v[:-1] == v[1:])


def _mlp(key, n, q):
    model = ebmflow.MLPEnergy.init(key, ebmflow.Potts(n, q), widths=(5,), activation="tanh")
    biases = [0.3 * jax.random.normal(k, layer.bias.shape) for k, layer in zip(jax.random.split(key, 2), model.layers)]
    return eqx.tree_at(lambda m: [layer.bias for layer in m.layers], model, biases)


POTTS_MODELS = [
    pytest.param(lambda k, n, q: ebmflow.PottsRBM.init(k, n, q, 3, scale=0.7, bias_scale=0.4), id="potts-rbm"),
    pytest.param(lambda k, n, q: ebmflow.PottsRBM.init(k, n, q, 2, scale=0.7, hidden="spin", bias_scale=0.4),
                 id="potts-rbm-spin"),
    pytest.param(lambda k, n, q: ebmflow.PottsPairwise.init(k, n, q, scale=0.6), id="potts-pairwise"),
    pytest.param(lambda k, n, q: ebmflow.CouplingModel.init(k, ebmflow.Potts(n, q), scale=0.3), id="coupling-model"),
    pytest.param(_mlp, id="potts-mlp"),
    pytest.param(lambda k, n, q: ColourChain(ebmflow.Potts(n, q), 0.8 * jax.random.normal(k, ())), id="user-colours"),
]


def random_probs(size, seed):
    p = np.random.default_rng(seed).gamma(2.0, size=size) + 0.05
    return p / p.sum()


def _bundle(model, target):
    states = ebmflow.all_states(model.space)
    value, grad = ebmflow.kl_and_grad(model, target)
    return {
        "energy": jax.vmap(model.energy)(states),
        "neg_energies": [ebmflow.neg_energies(ebmflow.with_chunk_size(model, c)) for c in (1, 3, 9, None)],
        "log_partition": ebmflow.log_partition(ebmflow.with_chunk_size(model, 3)),
        "log_probs": ebmflow.log_probs(model),
        "kl": ebmflow.kl(ebmflow.with_chunk_size(model, 1), target),
        "kl_and_grad": (value, ebmflow.flatten(grad)[0]),
        "couplings": ebmflow.couplings(model),
        "jacobian": ebmflow.coupling_jacobian(model),
        "hessian": ebmflow.hessian(ebmflow.with_chunk_size(model, 3), target),
    }


class PottsCase:
    def __init__(self, factory):
        self.model = factory(jax.random.key(0), N, Q)
        self.p = random_probs(Q**N, seed=1)
        self.target = ebmflow.Target.from_probs(self.p, space=self.model.space)
        self.got = jax.tree.map(np.asarray, eqx.filter_jit(_bundle)(self.model, self.target))
        self.neg_e = rp.neg_energies(self.model)
        theta, self.unflatten = ebmflow.flatten(self.model)
        self.theta = np.asarray(theta)


@pytest.fixture(scope="module", params=POTTS_MODELS)
def pcase(request):
    return PottsCase(request.param)


def test_energy_and_chunked_sums_match_the_reference(pcase):
    np.testing.assert_allclose(-pcase.got["energy"], pcase.neg_e, **EXACT)
    for chunked in pcase.got["neg_energies"]:
        np.testing.assert_allclose(chunked, pcase.neg_e, **EXACT)
    np.testing.assert_allclose(pcase.got["log_partition"], ref.log_partition(pcase.neg_e), **EXACT)
    np.testing.assert_allclose(pcase.got["log_probs"], rp.log_probs(pcase.neg_e), **EXACT)
    np.testing.assert_allclose(pcase.got["kl"], rp.kl(pcase.neg_e, pcase.p), **EXACT)
    np.testing.assert_allclose(pcase.got["kl_and_grad"][0], rp.kl(pcase.neg_e, pcase.p), **EXACT)


def test_gradient_and_jacobian_match_finite_differences(pcase):
    def f(theta):
        neg_e = rp.neg_energies(pcase.unflatten(jnp.asarray(theta)))
        return np.concatenate([[rp.kl(neg_e, pcase.p)], rp.couplings(neg_e, N, Q)[1:]])

    d = rp.central_difference(f, pcase.theta)
    np.testing.assert_allclose(pcase.got["kl_and_grad"][1], d[0], **FD)
    np.testing.assert_allclose(pcase.got["jacobian"], d[1:], **FD)


def test_hessian_equals_autodiff_of_the_plain_objective(pcase):
    plain = jax.hessian(lambda t: ebmflow.kl(pcase.unflatten(t), pcase.target))(jnp.asarray(pcase.theta))
    np.testing.assert_allclose(pcase.got["hessian"], plain, rtol=0, atol=1e-10)


def test_couplings_are_the_basis_expansion(pcase):
    np.testing.assert_allclose(pcase.got["couplings"], rp.couplings(pcase.neg_e, N, Q), **EXACT)


# ----------------------------------------------------------------------------- the space


def test_potts_states_and_indices():
    space = ebmflow.Potts(3, 4)
    np.testing.assert_array_equal(ebmflow.all_states(space), rp.states(3, 4))
    assert ebmflow.all_states(space).dtype == jnp.int32 and space.size == 64
    b = np.arange(64)
    np.testing.assert_array_equal(space.state_index(space.states_from_indices(b)), b)
    np.testing.assert_allclose(space.basis / 2, rp.helmert(4), **EXACT)
    for chunk_size, n_lo in [(1, 0), (3, 0), (4, 1), (63, 2), (64, 3), (None, 3)]:
        plan = space.with_chunk_size(chunk_size)
        assert plan.n_lo == n_lo and plan.n_chunks * plan.chunk_states == 64


def test_potts_space_errors():
    with pytest.raises(ValueError, match=r"number of colours q must be an int >= 2; got 1"):
        ebmflow.Potts(3, 1)
    with pytest.raises(ValueError, match=r"Potts\(n=20, q=21, .*\) has 21\*\*20 states, beyond exact enumeration"):
        ebmflow.all_states(ebmflow.Potts(20, 21))
    with pytest.raises(ValueError, match=r"target probs over .* must have shape \(27,\); got \(9,\)"):
        ebmflow.Target(np.full(9, 1 / 9), space=ebmflow.Potts(3, 3))
    rbm = ebmflow.PottsRBM.init(jax.random.key(0), 3, 3, 2)
    with pytest.raises(ValueError, match=r"model is over Potts\(3, q=3\) \(q=3\) but the target over 3 \(q=2\)"):
        ebmflow.kl(rbm, ebmflow.Target.from_probs(np.full(8, 1 / 8)))
    with pytest.raises(ValueError, match=r"PottsRBM weights must have shape \(n_hidden, n, q\)"):
        ebmflow.PottsRBM(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros(2))


# ----------------------------------------------------------------------------- effective model


@pytest.fixture(scope="module")
def rbm_and_values():
    model = ebmflow.PottsRBM.init(jax.random.key(3), N, Q, 4, scale=0.8, bias_scale=0.5)
    return model, rp.neg_energies(model)


def test_coupling_tensors_are_the_inclusion_exclusion_projections(rbm_and_values):
    model, values = rbm_and_values
    for sites in [(0,), (2,), (0, 1), (2, 0), (0, 1, 2), (1, 2, 0)]:
        got = np.asarray(ebmflow.coupling_tensor(model, sites))
        expected = rp.zero_sum_tensor(values, N, Q, sites)
        np.testing.assert_allclose(got, expected, **EXACT, err_msg=str(sites))
        for axis in range(len(sites)):  # zero sum along every colour axis
            np.testing.assert_allclose(got.sum(axis), 0, **EXACT)
    pairs = np.asarray(ebmflow.coupling_tensor(model, [(0, 1), (1, 2)]))
    assert pairs.shape == (2, Q, Q)
    np.testing.assert_allclose(pairs[1], rp.zero_sum_tensor(values, N, Q, (1, 2)), **EXACT)
    target = ebmflow.Target.from_probs(np.exp(rp.log_probs(values)), space=model.space)
    np.testing.assert_allclose(ebmflow.coupling_tensor(target, (0, 2)), rp.zero_sum_tensor(values, N, Q, (0, 2)),
                               **EXACT)


def test_order_norms_are_the_normalised_tensor_norms(rbm_and_values):
    model, values = rbm_and_values
    got = ebmflow.order_norms(ebmflow.couplings(model), model.space)
    expected = rp.order_norms(values, N, Q)
    np.testing.assert_allclose(got[1:], expected[1:], **EXACT)


def test_coupling_tensors_of_spin_models_are_j_times_spins():
    model = ebmflow.RBM(np.random.default_rng(0).normal(size=(3, 4)), np.zeros(4) + 0.3, np.ones(3) * 0.2)
    j = np.asarray(ebmflow.couplings(model))
    t = np.asarray(ebmflow.coupling_tensor(model, (1, 3)))
    s = np.array([1.0, -1.0])  # colour v is the spin 1 - 2v
    np.testing.assert_allclose(t, j[ebmflow.subset(1, 3)] * np.outer(s, s), **EXACT)


def _as_potts(rbm):
    """A spin RBM as a q = 2 Potts RBM: colour v ↔ s = 1 - 2v, so W_ai(v) = W_ai (1 - 2v)."""
    w = np.asarray(rbm.weights)
    a = np.asarray(rbm.visible_bias)
    return ebmflow.PottsRBM(np.stack([w, -w], axis=-1), np.stack([a, -a], axis=-1), rbm.hidden_bias, rbm.hidden)


def test_q_2_reproduces_the_binary_path():
    rbm = ebmflow.RBM(np.random.default_rng(1).normal(size=(3, 5)), np.random.default_rng(2).normal(size=5),
                      np.random.default_rng(3).normal(size=3), "spin")
    potts = _as_potts(rbm)
    p = random_probs(32, seed=4)
    spins_target = ebmflow.Target.from_probs(p)
    potts_target = ebmflow.Target.from_probs(p, space=ebmflow.Potts(5, 2))
    np.testing.assert_allclose(ebmflow.neg_energies(potts), ebmflow.neg_energies(rbm), **EXACT)
    np.testing.assert_allclose(ebmflow.couplings(potts), ebmflow.couplings(rbm), **EXACT)
    np.testing.assert_allclose(ebmflow.moments(potts_target), ebmflow.moments(spins_target), **EXACT)
    np.testing.assert_allclose(ebmflow.kl(potts, potts_target), ebmflow.kl(rbm, spins_target), **EXACT)
    np.testing.assert_allclose(ebmflow.order_norms(ebmflow.couplings(potts), potts.space),
                               ebmflow.order_norms(ebmflow.couplings(rbm)), **EXACT)


def test_zero_sum_gauges_keep_the_distribution():
    rbm = ebmflow.PottsRBM.init(jax.random.key(5), 4, 3, 3, scale=0.9, bias_scale=0.6)
    gauged = rbm.zero_sum_gauge()
    np.testing.assert_allclose(ebmflow.log_probs(gauged), ebmflow.log_probs(rbm), **EXACT)
    np.testing.assert_allclose(np.asarray(gauged.weights).sum(-1), 0, **EXACT)
    np.testing.assert_allclose(np.asarray(gauged.visible_bias).sum(-1), 0, **EXACT)
    pairwise = ebmflow.PottsPairwise.init(jax.random.key(6), 4, 3, scale=0.8)
    gauged = pairwise.zero_sum_gauge()
    np.testing.assert_allclose(ebmflow.log_probs(gauged), ebmflow.log_probs(pairwise), **EXACT)
    np.testing.assert_allclose(np.asarray(gauged.couplings).sum(1), 0, **EXACT)
    np.testing.assert_allclose(np.asarray(gauged.couplings).sum(2), 0, **EXACT)
    np.testing.assert_allclose(np.asarray(gauged.fields).sum(1), 0, **EXACT)
    # In its zero-sum gauge a pairwise model's blocks and fields are its effective couplings.
    values = rp.neg_energies(pairwise)
    np.testing.assert_allclose(gauged.tensor[0, 2], rp.zero_sum_tensor(values, 4, 3, (0, 2)), **EXACT)
    np.testing.assert_allclose(gauged.fields[1], rp.zero_sum_tensor(values, 4, 3, (1,)), **EXACT)


def test_pairwise_takes_the_symmetric_tensor():
    rng = np.random.default_rng(7)
    t = rng.normal(size=(3, 3, 2, 2))
    t = t + t.transpose(1, 0, 3, 2)
    model = ebmflow.PottsPairwise(np.zeros((3, 2)), t)
    mask = 1 - np.eye(3)[:, :, None, None]
    np.testing.assert_allclose(model.tensor, t * mask, **EXACT)
    with pytest.raises(ValueError, match=r"coupling tensor must be symmetric"):
        ebmflow.PottsPairwise(np.zeros((3, 2)), rng.normal(size=(3, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"couplings must have shape \(3, 3, 2, 2\) or \(3, 2, 2\)"):
        ebmflow.PottsPairwise(np.zeros((3, 2)), np.zeros((3, 3)))


def test_converters_from_the_file_layouts():
    """The rbms PBRBM layout (n_visible, q, n_hidden) and the papers' (q, n_visible, n_hidden), by their energies."""
    rng = np.random.default_rng(8)
    n, q, m = 3, 3, 2
    w_rbms, b_rbms, c = rng.normal(size=(n, q, m)), rng.normal(size=(n, q)), rng.normal(size=m)
    model = ebmflow.PottsRBM.from_rbms(w_rbms, b_rbms, c)
    expected = []
    for v in rp.states(n, q):  # sum h ∈ {0,1}^m of exp(vbias[i, v_i] + Σ_a h_a (hbias_a + Σ_i W[i, v_i, a]))
        x = c + sum(w_rbms[i, v[i]] for i in range(n))
        expected.append(sum(b_rbms[i, v[i]] for i in range(n)) + np.log(np.prod(1 + np.exp(x))))
    np.testing.assert_allclose(ebmflow.neg_energies(model), expected, **EXACT)
    paper = ebmflow.PottsRBM.from_couplings_inference(np.transpose(w_rbms, (1, 0, 2)), b_rbms.T, c)
    np.testing.assert_allclose(ebmflow.neg_energies(paper), expected, **EXACT)


# ----------------------------------------------------------------------------- targets


def test_colour_samples_counted_with_weights_and_pseudocount():
    x = np.array([[0, 2], [2, 1], [0, 2], [1, 1]])
    target = ebmflow.Target.from_samples(x, q=3, pseudocount=0.5)
    counts = np.zeros(9)
    for row in x:
        counts[rp.index(row, 3)] += 1
    np.testing.assert_allclose(target.probs, (counts + 0.5) / (4 + 0.5 * 9), **EXACT)
    assert target.space == ebmflow.Potts(2, 3) and "q = 3 (stated)" in target.description
    inferred = ebmflow.Target.from_samples(x, encoding="colours", pseudocount=0.5)
    assert inferred.space.q == 3 and "inferred" in inferred.description
    w = np.array([0.5, 1.0, 0.5, 2.0])
    weighted = ebmflow.Target.from_samples(x, q=4, weights=w, pseudocount=0.1)
    counts = np.zeros(16)
    for row, wi in zip(x, w):
        counts[rp.index(row, 4)] += wi
    np.testing.assert_allclose(weighted.probs, (counts + 0.1) / (w.sum() + 0.1 * 16), **EXACT)


def test_colour_sample_errors_name_row_and_column():
    with pytest.raises(ValueError, match=r"integers in 0\.\.2 \(q = 3\); row 1, column 0 holds 3"):
        ebmflow.Target.from_samples(np.array([[0, 1], [3, 1]]), q=3, pseudocount=1)
    with pytest.raises(ValueError, match=r"row 0, column 1 holds 1\.5"):
        ebmflow.Target.from_samples(np.array([[0, 1.5], [2, 1]]), q=3, pseudocount=1)
    with pytest.raises(ValueError, match=r"q, the number of colours, must be an int >= 2; got 1"):
        ebmflow.Target.from_samples(np.zeros((2, 2)), q=1)
    with pytest.raises(ValueError, match=r"6 of the 3\*\*2 = 9 states never occur in the 4 samples"):
        ebmflow.Target.from_samples(np.array([[0, 2], [2, 1], [0, 2], [1, 1]]), q=3)
    with pytest.raises(ValueError, match=r"weights must be 2 finite non-negative numbers"):
        ebmflow.Target.from_samples(np.zeros((2, 2)), q=2, weights=[1.0, -1.0], pseudocount=1)


def test_alignment_colours_errors_and_reweighting(tmp_path):
    path = tmp_path / "family.fasta"
    sequences = ["ACDE-", "ACDEF", "ACDQF", "WWWWW", "ACDE-"]
    path.write_text("".join(f">seq{i} some header\n{s[:3]}\n{s[3:]}\n" for i, s in enumerate(sequences)))
    aln = ebmflow.targets.read_alignment(path)
    alphabet = ebmflow.targets.ALPHABETS["protein"]
    assert aln.q == 21 and aln.names[1] == "seq1 some header"
    np.testing.assert_array_equal(aln.sequences, [[alphabet.index(c) for c in s] for s in sequences])
    identity = np.array([[np.mean([a == b for a, b in zip(s, t)]) for t in sequences] for s in sequences])
    np.testing.assert_allclose(aln.weights, 1 / (identity >= 0.8).sum(1), **EXACT)
    assert aln.n_effective == pytest.approx((1 / (identity >= 0.8).sum(1)).sum())
    sub = ebmflow.targets.read_alignment(path, columns=[0, 3], threshold=None)
    np.testing.assert_array_equal(sub.sequences, aln.sequences[:, [0, 3]])
    np.testing.assert_allclose(sub.weights, 1, **EXACT)
    target = aln.target(columns=[3, 4], pseudocount=0.5)
    assert target.space == ebmflow.Potts(2, 21)
    bad = tmp_path / "bad.fasta"
    bad.write_text(">a\nACDE\n>b\nACZE\n")
    with pytest.raises(ValueError, match=r"sequence 1 \('b'\) has 'Z' at column 2, not in the alphabet"):
        ebmflow.targets.read_alignment(bad)
    gapped = ebmflow.targets.read_alignment(bad, unknown="gap")
    assert gapped.sequences[1, 2] == 0
    a2m = tmp_path / "family.a2m"
    a2m.write_text(">a\nAcD.E\n>b\nA-E\n")  # lower case and '.' are insertions: dropped
    np.testing.assert_array_equal(ebmflow.targets.read_alignment(a2m).sequences,
                                  [[alphabet.index(c) for c in s] for s in ("ADE", "A-E")])
    uneven = tmp_path / "uneven.fasta"
    uneven.write_text(">a\nACD\n>b\nAC\n")
    with pytest.raises(ValueError, match=r"differ in length \(\[2, 3\]\)"):
        ebmflow.targets.read_alignment(uneven)
    with pytest.raises(ValueError, match=r"alphabet must be one of \['dna', 'protein', 'rna'\]"):
        ebmflow.targets.read_alignment(path, alphabet="A")


def test_alignment_gap_is_the_alphabets_dash_whatever_its_colour(tmp_path):
    path = tmp_path / "rna.fasta"
    path.write_text(">x\nAC-U\n>y\nAC.U\n>z\nACZU\n")
    aln = ebmflow.targets.read_alignment(path, "ACGU-", threshold=None, unknown="gap")  # the gap is colour 4
    np.testing.assert_array_equal(aln.sequences, [[0, 1, 4, 3]] * 3)
    path.write_text(">x\nACGU\n>y\nAC.U\n")
    with pytest.raises(ValueError, match=r"sequence 1 \('y'\) has '\.' at column 2, not in the alphabet 'ACGU'; "
                                         r"the alphabet has no gap '-'"):
        ebmflow.targets.read_alignment(path, "ACGU")
    with pytest.raises(ValueError, match=r"unknown='gap' reads unknown letters as the gap, but the alphabet 'ACGU' "
                                         r"has no gap '-'"):
        ebmflow.targets.read_alignment(path, "ACGU", unknown="gap")
    path.write_text(">x\nAC-U\n")
    assert ebmflow.targets.read_alignment(path, "RNA").alphabet == ebmflow.targets.ALPHABETS["rna"]  # names: any case
    with pytest.raises(ValueError, match=r"alphabet must be one of \['dna', 'protein', 'rna'\] or a string of at least "
                                         r"2 distinct symbols \(letters are read upper-case\); got 'aA'"):
        ebmflow.targets.read_alignment(path, "aA")
    with pytest.raises(ValueError, match=r"has 'A' at column 0, not in the alphabet 'protien'; the alphabet has no gap "
                                         r"'-' \(a custom alphabet: colour c is its c-th symbol; the named alphabets "
                                         r"are dna, protein, rna\)"):
        ebmflow.targets.read_alignment(path, "protien")

# ----------------------------------------------------------------------------- teachers


def test_blume_capel_pairs_are_beta_j2_sigma_sigma():
    beta, j2, j3, n = 0.7, 1.3, 0.4, 5
    teacher = ebmflow.targets.blume_capel(n, beta, j2, j3)
    sigma = np.array([1.0, -1.0, 0.0])
    for i, j in [(0, 1), (1, 2), (4, 0), (0, 2), (1, 3)]:
        neighbours = (j - i) % n in (1, n - 1)
        expected = beta * j2 * np.outer(sigma, sigma) if neighbours else np.zeros((3, 3))
        np.testing.assert_allclose(ebmflow.coupling_tensor(teacher, (i, j)), expected, **EXACT)
    np.testing.assert_allclose(ebmflow.coupling_tensor(teacher, (1, 2, 3)),
                               beta * j3 * np.einsum("a,b,c->abc", sigma, sigma, sigma), **EXACT)
    np.testing.assert_allclose(ebmflow.coupling_tensor(teacher, (0, 1, 3)), 0, **EXACT)
    open_chain = ebmflow.targets.blume_capel(n, beta, j2, j3, periodic=False)
    np.testing.assert_allclose(ebmflow.coupling_tensor(open_chain, (4, 0)), 0, **EXACT)
    values = np.array([beta * (j2 * sum(sigma[v[i]] * sigma[v[i + 1]] for i in range(n - 1))
                               + j3 * sum(sigma[v[i]] * sigma[v[i + 1]] * sigma[v[i + 2]] for i in range(n - 2)))
                       for v in rp.states(n, 3)])
    np.testing.assert_allclose(ebmflow.neg_energies(open_chain), values - values.mean(), **EXACT)


def test_blume_capel_counts_each_bond_once_and_teachers_keep_to_the_state_budget():
    sigma = np.array([1.0, -1.0, 0.0])
    for n, periodic, j3 in [(3, True, 0.0), (4, True, 0.5), (2, False, 0.5)]:
        teacher = ebmflow.targets.blume_capel(n, 0.7, 1.3, j3, periodic=periodic)
        np.testing.assert_allclose(ebmflow.coupling_tensor(teacher, (0, 1)), 0.7 * 1.3 * np.outer(sigma, sigma),
                                   rtol=0, atol=1e-12)
        if n >= 3:
            np.testing.assert_allclose(ebmflow.coupling_tensor(teacher, (0, 1, 2)),
                                       0.7 * j3 * np.einsum("a,b,c->abc", sigma, sigma, sigma), rtol=0, atol=1e-12)
    for n, periodic, j3, needs in [(2, True, 0.0, 3), (3, True, 0.5, 4), (1, False, 0.0, 2)]:
        with pytest.raises(ValueError, match=rf"a Blume–Capel teacher on .* needs n >= {needs}, so that each bond "
                                             rf"and triplet is counted once; got n={n}"):
            ebmflow.targets.blume_capel(n, 0.7, 1.3, j3, periodic=periodic)
    with pytest.raises(ebmflow.ComputeBudgetError, match=r"the Blume–Capel teacher over Potts\(21, q=3\) sums over "
                                                         r"1\.046e\+10 states, over the budget"):
        ebmflow.targets.blume_capel(21, 0.5)
    with pytest.raises(ebmflow.ComputeBudgetError, match=r"the random Potts teacher over Potts\(12, q=21\)"):
        ebmflow.targets.random_potts(jax.random.key(0), 12, 21, {2: 0.1})


def test_random_potts_has_the_chosen_orders():
    teacher = ebmflow.targets.random_potts(jax.random.key(0), 4, 3, {1: 0.3, 2: 0.2}, density={2: 0.5})
    norms = np.asarray(ebmflow.order_norms(ebmflow.couplings(teacher), teacher.space))
    assert norms[1] > 0.1 and norms[2] > 0.1 and np.all(norms[3:] < 1e-12)  # rounding of the round trip
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    nonzero = [np.abs(np.asarray(ebmflow.coupling_tensor(teacher, p))).max() > 1e-12 for p in pairs]
    assert sum(nonzero) == 3  # half of the C(4, 2) = 6 pairs


# ----------------------------------------------------------------------------- dynamics and analysis


@pytest.fixture(scope="module")
def potts_problem():
    student = ebmflow.PottsRBM.init(jax.random.key(11), N, Q, 2, scale=0.3, bias_scale=0.1)
    teacher = ebmflow.targets.random_potts(jax.random.key(12), N, Q, {1: 0.4, 2: 0.3, 3: 0.2})
    return student, ebmflow.Target.from_model(teacher)


def test_potts_flow_matches_solve_ivp(potts_problem):
    student, target = potts_problem
    ts = np.array([0.0, 0.3, 1.0, 3.0, 10.0])
    sol = ebmflow.flow(student, target, 10.0, ts=ts, rtol=1e-9, atol=1e-11)
    problem = rp.PottsRBMProblem(student, np.asarray(target.probs))
    expected = problem.flow(ts)
    thetas = np.asarray(jax.vmap(lambda m: ebmflow.flatten(m)[0])(sol.models))
    np.testing.assert_allclose(thetas, expected, rtol=0, atol=1e-6)  # ODE against ODE at tight tolerances
    np.testing.assert_allclose(sol.kl, [problem.kl(t) for t in expected], rtol=0, atol=1e-7)
    assert sol.moment_mismatch.shape == (5, N + 1) and np.all(np.diff(np.asarray(sol.kl)) < 0)
    values = [rp.neg_energies(m) for m in (ebmflow.flatten(student)[1](jnp.asarray(t)) for t in expected[-1:])]
    np.testing.assert_allclose(sol.coupling_norms[-1, 1:], rp.order_norms(values[0], N, Q)[1:], rtol=0, atol=1e-6)


def test_potts_batches_whose_energies_flatten_or_sum_their_parameters(potts_problem):
    """A batch of one PottsRBM, and PottsPairwise batches (energies scalar even for a batch), are batches."""
    _, target = potts_problem
    ts = np.array([0.0, 0.5, 2.0])
    keys = jax.random.split(jax.random.key(5), 2)
    batches = [eqx.filter_vmap(lambda k: ebmflow.PottsRBM.init(k, N, Q, 2, scale=0.3))(keys[:1]),
               eqx.filter_vmap(lambda k: ebmflow.PottsPairwise.init(k, N, Q, scale=0.3))(keys)]
    for batch in batches:
        sols = ebmflow.flow_batch(batch, target, 2.0, ts=ts)
        for i in range(len(sols.kl)):
            one = ebmflow.flow(jax.tree.map(lambda x, i=i: x[i] if eqx.is_array(x) else x, batch), target, 2.0, ts=ts)
            np.testing.assert_allclose(sols.kl[i], one.kl, rtol=0, atol=1e-9)


def test_potts_train_and_float32(potts_problem):
    student, target = potts_problem
    sgd = ebmflow.train(student, target, __import__("optax").sgd(0.1), 50, save_at=[0, 10, 50], time_per_step=0.1)
    problem = rp.PottsRBMProblem(student, np.asarray(target.probs))
    theta = problem.theta0.copy()
    for _ in range(50):
        theta = theta - 0.1 * problem.grad(theta)
    np.testing.assert_allclose(sgd.kl[-1], problem.kl(theta), rtol=0, atol=1e-10)
    m32 = jax.tree.map(lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, student)
    sol32 = ebmflow.flow(m32, target, 5.0, num_saves=5)
    assert sol32.kl.dtype == jnp.float32
    sol64 = ebmflow.flow(student, target, 5.0, num_saves=5)
    np.testing.assert_allclose(sol32.kl, sol64.kl, rtol=1e-4, atol=1e-6)  # float32 rounding along a flow


def test_potts_stability_counting_rule_at_a_data_consistent_point():
    """Teacher = student: KL = 0, ``∇²L = GᵀCG``, #stable = rank G, #neutral = P - rank G (THEORY §5, §9)."""
    model = ebmflow.PottsRBM.init(jax.random.key(14), N, Q, 4, scale=0.8, bias_scale=0.4)
    target = ebmflow.Target.from_model(model)
    rep = ebmflow.stability(model, target)
    assert rep.kind == "data-consistent" and rep.n_couplings == Q**N - 1
    assert rep.n_stable == rep.rank and rep.n_neutral == rep.n_params - rep.rank and rep.n_unstable == 0
    assert rep.decomposition["relative_residual"] < 1e-8
    assert rep.neutral["slope"] > 1.8  # neutral directions move the couplings at O(ε²)
    # a float32 model is analysed in float64: float32 rounding (~1e-7 of λ_max) would mix neutral and weakly
    # stable directions (it gave 33 stable, 1 neutral, 5 unstable for 26 / 13 / 0 here)
    model32 = ebmflow.PottsRBM.init(jax.random.key(0), N, Q, 3, scale=0.5, dtype=jnp.float32)
    rep32 = ebmflow.stability(model32, ebmflow.Target.from_model(cast_parameters(model32, jnp.float64)))
    assert rep32.eigenvalues.dtype == np.float64 and rep32.kind == "data-consistent"
    assert (rep32.n_stable, rep32.n_neutral, rep32.n_unstable) == (rep32.rank, rep32.n_params - rep32.rank, 0)
    # a model linear in its parameters: J(θ + εv) - J(θ) = ε G v = 0 exactly along its gauge (neutral) directions
    pairwise = ebmflow.PottsPairwise.init(jax.random.key(16), N, Q, scale=0.5)
    pair_rep = ebmflow.stability(pairwise, ebmflow.Target.from_model(pairwise))
    assert pair_rep.n_neutral == pair_rep.n_params - pair_rep.rank > 0
    assert max(pair_rep.neutral["coupling_changes"]) < 1e-14 and pair_rep.neutral["slope"] == np.inf
    full = ebmflow.CouplingModel.init(jax.random.key(15), ebmflow.Potts(N, Q), scale=0.3)
    full_rep = ebmflow.stability(full, ebmflow.Target.from_model(full))
    assert full_rep.rank == Q**N - 1 == full_rep.n_stable and full_rep.n_neutral == 0


def test_gauss_newton_term_over_colours():
    """``GᵀCG`` without ``C`` against the explicit covariance of the Potts basis functions."""
    from ebmflow.analysis._stability import gauss_newton

    space, rng = ebmflow.Potts(2, 3), np.random.default_rng(16)
    p = random_probs(9, seed=17)
    g = rng.normal(size=(8, 5))
    phi = np.array([[rp.basis_function(v, rp.state(k, 2, 3), 3) for k in range(1, 9)] for v in rp.states(2, 3)])
    mean = p @ phi
    cov = (phi * p[:, None]).T @ phi - np.outer(mean, mean)
    np.testing.assert_allclose(gauss_newton(g, p, space), g.T @ cov @ g, rtol=0, atol=1e-12)


def test_potts_pairwise_fit_of_a_three_body_teacher_is_spurious(potts_problem):
    """A pairwise Potts model is linear in its parameters: its flow ends at the one stationary point (up to gauge),
    which misses the teacher's triplets: spurious, with ``∇²L = GᵀCG`` and the gauge as its neutral directions."""
    _, target = potts_problem
    student = ebmflow.PottsPairwise.init(jax.random.key(18), N, Q, scale=0.1)
    sol = ebmflow.flow(student, target, 1e4, steady_tol=1e-9)
    end = jax.tree.map(lambda x: x[-1] if eqx.is_array(x) else x, sol.models)
    point = ebmflow.fixed_point(end, target)
    assert point.converged, point.message
    rep = ebmflow.stability(point.model, target)
    fields, pairs = N * (Q - 1), N * (N - 1) // 2 * (Q - 1) ** 2  # free couplings of orders 1 and 2
    assert rep.kind == "spurious" and rep.kl > 1e-4
    assert rep.rank == fields + pairs == rep.n_stable and rep.n_neutral == rep.n_params - rep.rank
    assert rep.n_unstable == 0 and rep.decomposition["curvature_norm"] == 0
    # it matches the data's moments of orders 1 and 2, not 3
    assert rep.moment_mismatch[1] < 1e-8 and rep.moment_mismatch[2] < 1e-8 and rep.moment_mismatch[3] > 1e-3
    taus = np.asarray(sol.learning_times(0.5))
    assert np.isnan(taus[0]) and np.isfinite(taus[1]) and np.isfinite(taus[2])
