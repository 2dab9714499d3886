"""RBMs read from HDF5 files in the layouts of the rbms package and the papers' code; contact scores; the CLI."""

import json
import math

import h5py
import numpy as np
import pytest
import reference_potts as rp
from scipy.special import logsumexp

import ebmflow
from ebmflow.cli import main

EXACT = {"rtol": 0, "atol": 1e-10}


def _bernoulli_neg_energies(w, b, c, n):
    """``ln Σ_h exp(-E(v, h))`` for {0,1} units, E = -b·v - c·h - vᵀWh with W (n_visible, n_hidden), state order s."""
    out = []
    for bits in range(2**n):
        s = np.array([1 - 2 * ((bits >> i) & 1) for i in range(n)])
        v = (s + 1) / 2  # ebmflow's spins s = 2v - 1
        out.append(b @ v + np.sum(np.logaddexp(0, c + v @ w)))
    return np.array(out)


def _potts_neg_energies(w_rbms, b_rbms, c, n, q):
    """The rbms PBRBM layout summed out explicitly: W (n, q, m), vbias (n, q)."""
    return np.array([sum(b_rbms[i, v[i]] for i in range(n)) + np.sum(np.logaddexp(0, c + sum(w_rbms[i, v[i]]
                                                                                            for i in range(n))))
                     for v in rp.states(n, q)])


def _same_distribution(model, neg_e):
    got = np.asarray(ebmflow.neg_energies(model))
    np.testing.assert_allclose(got - logsumexp(got), neg_e - logsumexp(neg_e), **EXACT)


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    n, q, m = 4, 3, 3
    return dict(w2=rng.normal(size=(n, m)), b2=rng.normal(size=n), wp=rng.normal(size=(n, q, m)),
                bp=rng.normal(size=(n, q)), c=rng.normal(size=m), n=n, q=q)


def test_rbms_package_files(tmp_path, arrays):
    a = arrays
    path = tmp_path / "bb.h5"
    with h5py.File(path, "w") as f:
        f["model_type"] = "BBRBM"
        f["parallel_chains"] = np.zeros((5, a["n"]))
        for k, scale in ((1, 0.0), (200, 1.0)):
            params = f.create_group(f"update_{k}/params")
            params["weight_matrix"], params["vbias"], params["hbias"] = a["w2"] * scale, a["b2"], a["c"]
    model = ebmflow.load_rbm(path)
    assert isinstance(model, ebmflow.RBM) and model.n == a["n"]
    _same_distribution(model, _bernoulli_neg_energies(a["w2"], a["b2"], a["c"], a["n"]))
    first = ebmflow.load_rbm(path, update=1)
    np.testing.assert_allclose(first.weights, 0, **EXACT)
    path = tmp_path / "pb.h5"
    with h5py.File(path, "w") as f:
        f["model_type"] = "PBRBM"
        group = f.create_group("update_7")
        group["params/weight_matrix"], group["params/vbias"], group["params/hbias"] = a["wp"], a["bp"], a["c"]
        group["weight_matrix"] = h5py.SoftLink("update_7/params/weight_matrix")  # dangling, as in some rbms files
    model = ebmflow.load_rbm(path)
    assert isinstance(model, ebmflow.PottsRBM) and model.space == ebmflow.Potts(a["n"], a["q"])
    _same_distribution(model, _potts_neg_energies(a["wp"], a["bp"], a["c"], a["n"], a["q"]))


def test_the_papers_layouts(tmp_path, arrays):
    a = arrays
    path = tmp_path / "potts_paper.h5"
    with h5py.File(path, "w") as f:  # couplings_inference: colour first, no params/ and no model_type
        g = f.create_group("update_5000")
        g["weight_matrix"], g["vbias"], g["hbias"] = a["wp"].transpose(1, 0, 2), a["bp"].T, a["c"]
    _same_distribution(ebmflow.load_rbm(path), _potts_neg_energies(a["wp"], a["bp"], a["c"], a["n"], a["q"]))
    path = tmp_path / "torchrbm.h5"
    with h5py.File(path, "w") as f:  # TorchRBM: the rbms orientation, hyperparameters, no model_type
        f["hyperparameters/num_hiddens"] = 3
        g = f.create_group("update_10")
        g["weight_matrix"], g["vbias"], g["hbias"] = a["wp"], a["bp"], a["c"]
    _same_distribution(ebmflow.load_rbm(path), _potts_neg_energies(a["wp"], a["bp"], a["c"], a["n"], a["q"]))
    path = tmp_path / "binary_epochs.h5"
    with h5py.File(path, "w") as f:  # W{epoch} (n_hidden, n_visible)
        for e, scale in ((500, 0.5), (5000, 1.0)):
            f[f"W{e}"], f[f"vbias{e}"], f[f"hbias{e}"] = a["w2"].T * scale, a["b2"], a["c"]
    _same_distribution(ebmflow.load_rbm(path), _bernoulli_neg_energies(a["w2"], a["b2"], a["c"], a["n"]))
    _same_distribution(ebmflow.load_rbm(path, update=500),
                       _bernoulli_neg_energies(a["w2"] * 0.5, a["b2"], a["c"], a["n"]))
    path = tmp_path / "potts_epochs.h5"
    with h5py.File(path, "w") as f:  # W{epoch} (q, n_visible, n_hidden), the last one named by ep_tot
        f["ep_tot"] = 30
        for e in (30, 40):
            f[f"W{e}"], f[f"vbias{e}"], f[f"hbias{e}"] = a["wp"].transpose(1, 0, 2) * e / 30, a["bp"].T, a["c"]
    _same_distribution(ebmflow.load_rbm(path), _potts_neg_energies(a["wp"], a["bp"], a["c"], a["n"], a["q"]))


def test_bad_files_list_what_they_hold(tmp_path, arrays):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["model_type"] = "BGRBM"
        f["update_3/params/weight_matrix"], f["update_3/params/vbias"] = arrays["w2"], arrays["b2"]
        f["update_3/params/hbias"] = arrays["c"]
    with pytest.raises(ValueError, match=r"model_type 'BGRBM' .* is not a model ebmflow reads.*holds: model_type, "
                                         r"update_3"):
        ebmflow.load_rbm(path)
    with pytest.raises(ValueError, match=r"update 4 is not in the file \(it has \[3\]\)"):
        ebmflow.load_rbm(path, update=4)
    path = tmp_path / "missing.h5"
    with h5py.File(path, "w") as f:
        f["update_1/params/weight_matrix"] = arrays["w2"]
    with pytest.raises(ValueError, match=r"/update_1 has no vbias\. The file holds: update_1"):
        ebmflow.load_rbm(path)
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f["something"] = 1
    with pytest.raises(ValueError, match=r"no RBM parameters found\. The file holds: something\. Readable layouts"):
        ebmflow.load_rbm(path)
    text = tmp_path / "not.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"cannot read .*not\.h5' as an HDF5 file"):
        ebmflow.load_rbm(text)


# ----------------------------------------------------------------------------- contacts


def test_contact_scores_written_out():
    rng = np.random.default_rng(1)
    n, q = 8, 3
    j = rng.normal(size=(n, n, q, q))
    j = j + j.transpose(1, 0, 3, 2)
    f = ebmflow.analysis.frobenius_scores(j, gap=0)
    for i in range(n):
        for k in range(n):
            expected = 0.0 if i == k else math.sqrt(sum(j[i, k, a, b] ** 2 for a in range(1, q) for b in range(1, q)))
            assert f[i, k] == pytest.approx(expected, abs=1e-12)
    corrected = ebmflow.analysis.apc(f)
    total = f.sum()
    for i, k in [(0, 3), (2, 7)]:
        assert corrected[i, k] == pytest.approx(f[i, k] - f[i].sum() * f[:, k].sum() / total, abs=1e-12)
    ranked, scores = ebmflow.analysis.ranked_pairs(corrected, min_separation=3)
    assert all(j - i >= 3 for i, j in ranked) and len(ranked) == sum(1 for i in range(n) for k in range(i + 3, n))
    assert np.all(np.diff(scores) <= 0)
    contacts = np.zeros((n, n), bool)
    contacts[tuple(ranked[0])] = contacts[tuple(ranked[2])] = True
    np.testing.assert_allclose(ebmflow.analysis.ppv(ranked, contacts | contacts.T)[:4], [1, 0.5, 2 / 3, 0.5])


def test_read_contacts(tmp_path):
    d = np.full((5, 5), 10.0)
    d[0, 3] = d[3, 0] = 5.0
    np.save(tmp_path / "d.npy", d)
    got = ebmflow.analysis.read_contacts(tmp_path / "d.npy", 5)
    assert got[0, 3] and got[3, 0] and got.sum() == 2
    (tmp_path / "pairs.txt").write_text("1 4 0 5.0\n2 5 0 9.0\n")  # 1-based, distance last
    np.testing.assert_array_equal(ebmflow.analysis.read_contacts(tmp_path / "pairs.txt", 5), got)
    with pytest.raises(ValueError, match=r"site numbers must be in 1\.\.3 \(index_base 1\); found 1\.\.5"):
        ebmflow.analysis.read_contacts(tmp_path / "pairs.txt", 3)


# ----------------------------------------------------------------------------- the command line


def test_couplings_command(tmp_path, arrays, capsys):
    rng = np.random.default_rng(2)
    n, q, m = 12, 3, 8
    w, b, c = rng.normal(0, 0.4, (n, q, m)), rng.normal(0, 0.3, (n, q)), rng.normal(0, 0.3, m)
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as f:
        f["model_type"] = "PBRBM"
        f["update_9/params/weight_matrix"], f["update_9/params/vbias"], f["update_9/params/hbias"] = w, b, c
    d = rng.uniform(4, 12, (n, n))
    np.save(tmp_path / "d.npy", (d + d.T) / 2)
    out = tmp_path / "out"
    code = main(["couplings", str(path), "--out", str(out), "--orders", "1,2,3", "--triplets", "0,1,2;3,4,5",
                 "--contacts", str(tmp_path / "d.npy"), "--quiet"])
    assert code == 0
    results = ebmflow.load(out / "couplings.npz")
    model = ebmflow.load_rbm(path)
    np.testing.assert_allclose(results["pairs"], ebmflow.rbm_couplings(model, 2), **EXACT)
    assert results["triplets"].shape == (2, q, q, q) and results["ppv"].shape == (len(results["ranked_pairs"]),)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_type"] == "PottsRBM" and set(summary["ppv"]) == {"L/10", "L/5", "L/2", "L"}
    assert {p.name for p in out.glob("*.png")} == {"couplings.png", "histograms.png", "contacts.png"}
    assert main(["couplings", str(path), "--out", str(tmp_path / "x"), "--orders", "3"]) == 1
    assert "orders are 1 (fields), 2 (pairs) and 3 (on given triplets); got [3] with no triplets" in \
        capsys.readouterr().err
    assert main(["couplings", str(tmp_path / "none.h5"), "--out", str(tmp_path / "y")]) == 1
    assert "cannot read" in capsys.readouterr().err and not (tmp_path / "y").exists()
