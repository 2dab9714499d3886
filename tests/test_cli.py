"""The researcher workflow end to end: experiment files, `ebmflow.cli.main`, results files, figures.

The numbers in a results file are checked against `reference.py` (NumPy loops over
all states), from the stored parameters and target alone. Runs are small (n = 5,
4 hidden units, t1 = 1e3): compiling, not integrating, dominates their time, and
one compiled flow serves the runs of the same shape in this module.
"""

import contextlib
import io
import json
import os
import re
import shutil
from glob import glob
from pathlib import Path

import jax
import numpy as np
import pytest
import reference as ref

import ebmflow
from ebmflow.cli import _main as _cli, main
from ebmflow.experiments import _run, build_model, load_experiment, parse_experiment
from ebmflow.io import load, save
from ebmflow.io._results import FORMAT, write_json

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "ebmflow" / "experiments" / "demo_expressive.toml"
SUMMARY_KEYS = {"final_kl", "kind", "n_stable", "n_neutral", "n_unstable", "learning_times", "wall_time_s", "versions"}


def _edit(text: str, **values) -> str:
    """Replace the value of each ``key = value`` line (keys are unique in the demo file)."""
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    return text


def _small_demo() -> str:
    """The demo's expressive RBM at reduced size: same teacher and dynamics, 2 members written one group at a time."""
    return _edit(DEMO.read_text(), n=5, n_hidden=4, t1="1e3", num_saves=21, members="2\ngroup = 1")


def _temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def _pngs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.png")}


@pytest.fixture(scope="module", autouse=True)
def no_compilation_cache():
    """In-process runs never touch the user's compilation cache (tests/test_faults.py tests the cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBMFLOW_COMPILATION_CACHE", "0")
        yield


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, no_compilation_cache):
    """``ebmflow run`` on the reduced demo, once for the module: (experiment file, out folder, printed text)."""
    folder = tmp_path_factory.mktemp("demo")
    config = folder / "small_demo.toml"
    config.write_text(_small_demo())
    out = folder / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", str(config), "--out", str(out), "--quiet"])
    assert code == 0
    return config, out, stdout.getvalue()


# ----------------------------------------------------------------------------- a run and its files


def test_run_writes_results_summary_and_figures(demo_run):
    _, out, printed = demo_run
    assert printed == ""  # --quiet
    assert {"results.npz", "summary.json"} <= set(os.listdir(out))
    assert _pngs(out) == {"kl.png", "hierarchy.png", "spectrum.png", "batch.png"}
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _temp_files(out) == []

    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["status"] == "complete" and summary["members"] == summary["members_done"] == 2
    assert set(summary["versions"]) >= {"ebmflow", "jax", "numpy", "python"}
    assert summary["versions"]["ebmflow"] == ebmflow.__version__
    assert summary["wall_time_s"] > 0
    assert set(summary["learning_times"]) == {str(k) for k in range(1, 6)}

    results = load(out)
    assert results.metadata["status"] == "complete" and results.metadata["members_done"] == 2
    assert results.metadata["seeds"] == [1, 2] and results.metadata["dtype"] == "float64"
    assert set(results.metadata["arrays"]) == set(results)  # every array is described
    assert summary["final_kl"] == results["kl"][0, -1]
    for key in ("n_stable", "n_neutral", "n_unstable", "rank"):
        assert summary[key] == results[key][0]
    assert summary["kind"] == results.metadata["kinds"][0]


def test_results_match_independent_recomputation(demo_run):
    """KL, moments, couplings, Δ_k, τ_k, gradient and Hessian trace, from the stored parameters alone."""
    config, out, _ = demo_run
    results, experiment = load(out), load_experiment(config)
    p_data = results["target_probs"]
    n = experiment.model.n
    by_order = lambda x: np.array([np.linalg.norm(x[ref.subsets_of_order(n, k)]) for k in range(n + 1)])  # noqa: E731

    # The target is the teacher's distribution, exactly.
    teacher = ebmflow.targets.random_ising(jax.random.key(experiment.target.seed), n,
                                           {int(k): v for k, v in experiment.target.stds.items()})
    np.testing.assert_allclose(p_data, np.exp(ref.log_probs(ref.neg_energies(teacher))), rtol=1e-12, atol=0)
    j_star = ref.couplings_from_neg_energies(np.log(p_data))
    j_star[0] = 0.0  # the gauge is never compared
    np.testing.assert_allclose(results["target_coupling_norms"], by_order(j_star), rtol=1e-10, atol=1e-14)

    members, size = results["final_params"].shape
    assert members == 2 and results["kl"].shape == (2, experiment.dynamics.num_saves + 1)
    for i, (seed, scale) in enumerate(zip(results.metadata["seeds"], results.metadata["scales"])):
        fresh = build_model(experiment, jax.random.key(seed), scale)
        theta0, unflatten = ebmflow.flatten(fresh)
        assert theta0.shape == (size,)
        np.testing.assert_allclose(results["initial_params"][i], theta0, rtol=1e-12, atol=1e-15)

        neg_e = ref.neg_energies(unflatten(results["final_params"][i]))
        p_model = np.exp(ref.log_probs(neg_e))
        # Exact algebra: ebmflow's streamed sums against loops over the 32 states.
        np.testing.assert_allclose(results["kl"][i, -1], ref.kl(neg_e, p_data), rtol=1e-9, atol=1e-14)
        mismatch = by_order(ref.moments(p_model) - ref.moments(p_data))
        np.testing.assert_allclose(results["moment_mismatch"][i, -1], mismatch, rtol=1e-8, atol=1e-14)
        j = ref.couplings_from_neg_energies(neg_e)
        j[0] = 0.0
        np.testing.assert_allclose(results["coupling_norms"][i, -1], by_order(j), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(results["coupling_error"][i, -1], by_order(j - j_star), rtol=1e-8, atol=1e-14)

        # Δ_k(t) relative to t = 0, and τ_k(α) as its first passage below α.
        mm = results["moment_mismatch"][i]
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = np.where(mm[0] > 0, mm / mm[0], np.nan)
        np.testing.assert_allclose(results["delta"][i], delta, rtol=1e-12, equal_nan=True)
        ts, alpha = results["ts"], experiment.analysis.alpha
        for k in range(1, n + 1):
            tau, below = results["learning_times"][i, k], np.flatnonzero(delta[:, k] <= alpha)
            if below.size == 0:
                assert tau == np.inf
            else:
                first = below[0]
                assert ts[max(first - 1, 0)] <= tau <= ts[first]

        # Counts: every Hessian direction is stable, neutral or unstable, by the stated threshold.
        lam = results["eigenvalues"][i]
        assert lam.shape == (size,) and np.all(np.diff(lam) >= 0)
        counts = [results[key][i] for key in ("n_stable", "n_neutral", "n_unstable")]
        assert sum(counts) == size
        t = results.metadata["stability"][i]["thresholds"]["eig_rtol"] * np.abs(lam).max()
        assert counts == [(lam > t).sum(), (np.abs(lam) <= t).sum(), (lam < -t).sum()]
        assert 0 <= results["rank"][i] <= min(size, 2**n - 1)

        if i == 0:  # gradient norm by central differences (h = 1e-5) of the reference KL
            loss = lambda th, unflatten=unflatten: ref.kl(ref.neg_energies(unflatten(th)), p_data)  # noqa: E731
            theta = results["final_params"][0]
            grad = ref.central_difference(loss, theta)
            np.testing.assert_allclose(results["grad_norm"][0, -1], np.linalg.norm(grad), rtol=1e-6)

    # Where refinement did not converge the endpoint itself was analysed: its gradient norm, and the
    # trace of its Hessian (the sum of the stored eigenvalues) by second differences (h = 1e-4: ~1e-7).
    if results.metadata["refinements"][0].startswith("not converged"):
        report = results.metadata["stability"][0]
        np.testing.assert_allclose(report["grad_norm"], np.linalg.norm(grad), rtol=1e-6)
        h = 1e-4
        trace = sum((loss(theta + h * e) - 2 * loss(theta) + loss(theta - h * e)) / h**2 for e in np.eye(theta.size))
        np.testing.assert_allclose(results["eigenvalues"][0].sum(), trace, rtol=1e-5)


def test_plot_regenerates_every_figure_from_the_results_file(demo_run, tmp_path, capsys):
    _, out, _ = demo_run
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    figures = _pngs(folder)
    for png in folder.glob("*.png"):
        png.unlink()
    (folder / "summary.json").unlink()  # the results file alone suffices
    assert main(["plot", str(folder)]) == 0
    assert _pngs(folder) == figures
    assert capsys.readouterr().out.split() == [str(folder / f"{name}.png") for name in ("kl", "hierarchy", "spectrum",
                                                                                        "batch")]
    for png in folder.glob("*.png"):
        png.unlink()
    assert main(["plot", str(folder / "results.npz"), "--pdf"]) == 0
    assert _pngs(folder) == figures
    assert {p.stem for p in folder.glob("*.pdf")} == {Path(f).stem for f in figures}
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in folder.glob("*.pdf"))


def test_batch_figure_keeps_exact_fits():
    """A final KL of 0 or just below (rounding at an exact fit) is drawn at the floor and counted, not dropped."""
    from matplotlib.figure import Figure

    from ebmflow.io._plots import plot_batch
    from ebmflow.io._results import Results

    kl = np.array([[0.3, 2e-3], [0.3, -3e-16], [0.3, 0.0], [0.3, np.nan]])
    taus = np.full((4, 4), np.nan)
    results = Results({"config": {"analysis": {"alpha": 0.1}}}, {"kl": kl, "learning_times": taus})
    axes = Figure().subplots(1, 2)
    plot_batch(results, axes)
    points = axes[0].collections[0].get_offsets()
    np.testing.assert_array_equal(points[:, 0], [0, 1, 2])  # run 3 (NaN) is the only one left out
    np.testing.assert_allclose(points[:, 1], [2e-3, 1e-16, 1e-16])
    assert "2 at ≤ 1e-16 (rounding) drawn at 1e-16" in axes[0].get_title()


def test_plot_of_a_folder_without_results(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ebmflow: error: cannot read results file") and "results.npz" in err


# ----------------------------------------------------------------------------- interrupted runs


def _interrupt_on_call(monkeypatch, number: int):
    """Make the `number`-th group integration (1-based) raise KeyboardInterrupt, as Ctrl-C would."""
    real, calls = _run._integrate, []

    def integrate(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_run, "_integrate", integrate)


def test_interrupted_run_keeps_finished_members(demo_run, tmp_path, monkeypatch, capsys):
    config, _, _ = demo_run  # same shapes: the compiled flow is reused
    out = tmp_path / "out"
    _interrupt_on_call(monkeypatch, 2)
    assert main(["run", str(config), "--out", str(out)]) == 130
    printed = capsys.readouterr().out
    assert "interrupted: kept 1 of 2 members" in printed
    assert "interrupted, 1 of 2 runs" in printed

    results = load(out)
    assert results.metadata["status"] == "interrupted" and results.metadata["members_done"] == 1
    assert results["kl"].shape[0] == results["final_params"].shape[0] == 1
    assert "eigenvalues" not in results  # no analysis of an interrupted batch
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["members_done"] == 1
    assert summary["final_kl"] == results["kl"][0, -1]
    assert _pngs(out) == {"kl.png", "hierarchy.png"}  # one member: no batch figure; no spectrum
    assert _temp_files(out) == []


def test_run_interrupted_during_the_analysis(demo_run, tmp_path, monkeypatch, capsys):
    config, _, _ = demo_run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_run, "stability", interrupted)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 130
    assert "interrupted during the stability analysis: kept 2 of 2 members" in capsys.readouterr().out
    results = load(out)
    assert results.metadata["status"] == "interrupted" and results.metadata["members_done"] == 2
    assert results["kl"].shape[0] == 2 and "eigenvalues" not in results
    assert _pngs(out) == {"kl.png", "hierarchy.png", "batch.png"}


def test_run_interrupted_before_any_member_finished(demo_run, tmp_path, monkeypatch, capsys):
    config, _, _ = demo_run
    out = tmp_path / "out"
    _interrupt_on_call(monkeypatch, 1)
    assert main(["run", str(config), "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert "no run finished" in captured.out and captured.err == ""
    results = load(out)
    assert results.metadata["status"] == "interrupted" and results.metadata["members_done"] == 0
    assert results["kl"].shape[0] == 0 and _pngs(out) == set()
    assert main(["plot", str(out)]) == 1
    assert "ebmflow: error: the results hold no finished run (status 'interrupted')" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad experiment files

BASE = '[model]\nn = 5\n\n[target]\ntype = "random_ising"\n'

BAD_FILES = {  # name: (file text, what the error must say)
    "unknown key": (BASE.replace("n = 5", "n = 5\nhiden = 4"),
                    r"model\.hiden: Extra inputs are not permitted \(got 4\)"),
    "unknown section": (BASE + "[dynamic]\nt1 = 10\n", r"dynamic: Extra inputs are not permitted"),
    "wrong type int": (BASE.replace("n = 5", 'n = 5\nn_hidden = "four"'),
                       r"model\.n_hidden: Input should be a valid integer \(got 'four'\)"),
    "float for an int": (BASE.replace("n = 5", "n = 5.0"), r"model\.n: Input should be a valid integer \(got 5\.0\)"),
    "string for a number": (BASE + '[dynamics]\nt1 = "1e3"\n',
                            r"dynamics\.t1: Input should be a valid number \(got '1e3'\)"),
    "string for a bool": (BASE + '[analysis]\nstability = "yes"\n',
                          r"analysis\.stability: Input should be a valid boolean \(got 'yes'\)"),
    "unknown choice": (BASE + '[dynamics]\nmethod = "flw"\n',
                       r"dynamics\.method: Input should be 'flow' or 'train' \(got 'flw'\)"),
    "impossible size": (BASE.replace("n = 5", "n = 40"),
                        r"model\.n: Input should be less than or equal to 30 \(got 40\)"),
    "negative scale": (BASE.replace("n = 5", "n = 5\nscale = -0.1"),
                       r"model\.scale: Input should be greater than 0 \(got -0\.1\)"),
    "rows x cols != n": (BASE.replace('"random_ising"', '"ising_grid"\nrows = 2\ncols = 3'),
                         r"target rows × cols = 2 × 3 must equal model\.n = 5"),
    "walsh too large": (BASE.replace("n = 5", 'n = 20\ntype = "walsh"'), r"model\.type = 'walsh'.*n = 20 is too large"),
    "scales per member": (BASE + "[batch]\nmembers = 2\nscales = [0.1]\n",
                          r"batch\.scales has 1 entries; batch\.members is 2"),
    "stds order": (BASE + 'stds = { "6" = 0.1 }\n', r"target\.stds orders must be at most model\.n = 5"),
    "samples without path": (BASE.replace('"random_ising"', '"samples"'),
                             r"target\.type = 'samples' needs target\.path"),
    "invalid TOML": ("[model\nn = 5\n", r"experiment file '.*experiment\.toml' is not valid TOML"),
}

SAMPLES = BASE.replace('"random_ising"', '"samples"\npath = "{path}"')
BAD_SAMPLES = {  # name: (samples file name, its content or None for no file, what the error must say)
    "missing": ("missing.csv", None, r"cannot read samples from '.*missing\.csv': .*(No such file|not found)"),
    "unreadable type": ("samples.parquet", "0,1,0,1,0\n", r"accepted file types are \.npy, \.csv and \.txt"),
    "not numbers": ("samples.csv", "a,b,c,d,e\n", r"cannot read samples from '.*samples\.csv'"),
    "non-binary": ("samples.csv", "0,1,0,1,0\n1,1,2,0,0\n", r"samples must be binary.*row 1, column 2 holds 2"),
    "wrong width": ("samples.csv", "0,1,0,1\n1,1,0,0\n", r"have n = 4 columns but model\.n = 5"),
}


def test_a_small_model_does_not_trip_over_unused_defaults():
    """``target.stds`` (orders 1-3 by default) matters only to random_ising: n = 2 works for other targets."""
    config = parse_experiment({"model": {"n": 2}, "target": {"type": "ising_chain"}})
    assert config.model.n == 2 and config.target.type == "ising_chain"
    with pytest.raises(ValueError, match=r"target\.stds orders must be at most model\.n = 2"):
        parse_experiment({"model": {"n": 2}, "target": {"type": "random_ising"}})


def _assert_clean_failure(code, capsys, pattern, out: Path):
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("ebmflow: error: "), captured.err
    assert re.search(pattern, captured.err, re.DOTALL), captured.err
    assert captured.out == ""
    assert not out.exists()  # nothing half-written: the folder is made only once the inputs are read


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_experiment_file_is_a_clear_error(name, tmp_path, capsys):
    text, pattern = BAD_FILES[name]
    path = tmp_path / "experiment.toml"
    path.write_text(text)
    out = tmp_path / "out"
    _assert_clean_failure(main(["run", str(path), "--out", str(out)]), capsys, pattern, out)


@pytest.mark.parametrize("name", list(BAD_SAMPLES))
def test_bad_samples_file_is_a_clear_error(name, tmp_path, capsys):
    filename, content, pattern = BAD_SAMPLES[name]
    if content is not None:
        (tmp_path / filename).write_text(content)
    path = tmp_path / "experiment.toml"
    path.write_text(SAMPLES.replace("{path}", filename))  # relative to the experiment file
    out = tmp_path / "out"
    _assert_clean_failure(main(["run", str(path), "--out", str(out), "--quiet"]), capsys, pattern, out)


def test_missing_experiment_file_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", str(tmp_path / "nowhere.toml"), "--out", str(out)])
    _assert_clean_failure(code, capsys, r"cannot read experiment file '.*nowhere\.toml'", out)


def test_command_line_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ebmflow {ebmflow.__version__}"
    for argv in ([], ["run"], ["run", "x.toml"], ["frobnicate"]):  # usage errors are bad input: 1 (2 is file system)
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 1
    assert "usage: ebmflow" in capsys.readouterr().err


# ----------------------------------------------------------------------------- results files


def test_results_round_trip(tmp_path):
    arrays = {
        "kl": np.linspace(1, 0, 12).reshape(2, 6), "result": np.array([0, 3], np.int32),
        "mask": np.array([True, False]), "scalar": np.float64(2.5), "empty": np.zeros((0, 3)),
        "nan": np.array([np.nan, np.inf, -np.inf]),
    }
    metadata = {"name": "round trip", "config": {"model": {"n": 5}, "seeds": [1, 2]}, "value": np.float64(0.25),
                "count": np.int64(3), "vector": np.arange(3), "text": "τ_k ≤ α", "none": None}
    path = save(tmp_path / "sub" / "results.npz", metadata, arrays)
    assert path == tmp_path / "sub" / "results.npz"
    assert os.listdir(path.parent) == ["results.npz"]  # the temporary file was renamed, none left
    results = ebmflow.load(path.parent)  # the public entry point: a folder or the file
    assert set(results) == set(arrays) and len(results) == len(arrays)
    for key, value in arrays.items():
        assert results[key].dtype == np.asarray(value).dtype
        np.testing.assert_array_equal(results[key], value)
    assert results.metadata == {"format": FORMAT, **metadata, "value": 0.25, "count": 3, "vector": [0, 1, 2]}
    assert "round trip" in repr(results)
    # Readable anywhere with NumPy alone.
    with np.load(path) as raw:
        assert json.loads(str(raw["metadata"]))["format"] == FORMAT
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not the private mode of a temporary file


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save(tmp_path / "results.npz", {"name": "first"}, {"x": np.arange(3)})

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(path, {"name": "second"}, {"x": np.arange(4)})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["results.npz"]
    assert load(path).metadata["name"] == "first"
    with pytest.raises(TypeError, match="cannot store object in JSON"):
        save(path, {"bad": object()}, {})
    with pytest.raises(TypeError, match="cannot store object in JSON"):
        write_json(tmp_path / "summary.json", {"bad": object()})
    assert os.listdir(tmp_path) == ["results.npz"]


def test_load_rejects_what_is_not_an_ebmflow_results_file(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    np.savez(tmp_path / "other.npz", metadata=np.array("not json"))
    np.savez(tmp_path / "format.npz", metadata=np.array(json.dumps({"format": "something-else/9"})))
    np.save(tmp_path / "array.npy", np.arange(3))
    (tmp_path / "text.txt").write_text("kl = 0.1\n")
    cases = {
        "plain.npz": r"'.*plain\.npz' is not an ebmflow results file \(no metadata entry\)",
        "other.npz": r"'.*other\.npz' is not an ebmflow results file \(its metadata entry is not a JSON object\)",
        "format.npz": r"'.*format\.npz' has format 'something-else/9'; this ebmflow reads 'ebmflow-results/1'",
        "array.npy": r"'.*array\.npy' is not an ebmflow results file \(not an \.npz archive\)",
        "text.txt": r"'.*text\.txt' is not an ebmflow results file \(not an \.npz archive\)",
        "missing.npz": r"cannot read results file '.*missing\.npz': .*No such file",
    }
    for name, pattern in cases.items():
        with pytest.raises(ValueError, match=pattern):
            load(tmp_path / name)


def test_printed_summary(demo_run, capsys):
    """The human summary: the endpoint refinement's message, and a KL at rounding level printed as 0."""
    _, out, _ = demo_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["refinement"] == load(out).metadata["refinements"][0]
    summary |= {"final_kl": -3.2e-16, "refinement": "not converged: ||∇L|| = 1.5e-07 > tol = 1e-10 after 17 steps"}
    _cli._print_summary(summary, out, [out / "kl.png"])
    printed = capsys.readouterr().out
    assert "final KL = 0 within rounding (-3e-16 nats)" in printed
    assert "fixed-point refinement of the endpoint: not converged: ||∇L|| = 1.5e-07" in printed
    summary["final_kl"] = 2.5e-3
    _cli._print_summary(summary, out, [])
    assert "final KL = 2.500e-03 nats" in capsys.readouterr().out


# ----------------------------------------------------------------------------- examples and the demo

EXAMPLES = sorted(glob(str(ROOT / "examples" / "*.toml")))


@pytest.mark.parametrize("path", [pytest.param(p, id=Path(p).stem) for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    """Every shipped example runs to completion (10-30 s each on 2 cores, mostly compilation)."""
    out = tmp_path / "out"
    assert main(["run", path, "--out", str(out), "--quiet"]) == 0
    results = load(out)
    assert results.metadata["status"] == "complete"
    assert np.all(np.isfinite(results["kl"][:, -1]))
    assert {"kl.png", "hierarchy.png"} <= _pngs(out)


def test_examples_are_listed():
    assert len(EXAMPLES) >= 5


@pytest.mark.slow
def test_demo(tmp_path, capsys):
    """The demo's story, from its files: one teacher with fields, pairs and triplets on 5 spins.

    The expressive RBM (P = 53 >= 31 couplings) ends at data-consistent points with P - rank G
    neutral directions and learns order 1 before 2 before 3; the RBM with one hidden unit
    (P = 11 < 31) stops at a spurious point from every initialisation.
    """
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for folder in ("expressive", "under_expressive"):
        assert _pngs(out / folder) == {"kl.png", "hierarchy.png", "spectrum.png", "batch.png"}
        summary = json.loads((out / folder / "summary.json").read_text())
        assert SUMMARY_KEYS <= set(summary) and summary["status"] == "complete" and summary["members_done"] == 8

    results = load(out / "expressive")
    size = results["final_params"].shape[1]
    assert size == 5 + 8 + 5 * 8 == 53
    assert results.metadata["kinds"] == ["data-consistent"] * 8
    assert np.all(np.abs(results["kl"][:, -1]) < 1e-12)
    assert np.all(results["rank"] == 2**5 - 1) and np.all(results["n_neutral"] == size - results["rank"])
    taus = results["learning_times"][:, 1:4]
    assert np.all(taus[:, 0] < taus[:, 1]) and np.all(taus[:, 1] < taus[:, 2])  # every run, not only the median
    assert "expressive RBM: P = 53 >= 31 couplings: 8/8 data-consistent, KL < 1e-1" in printed
    assert "22 = P - rank G neutral directions; low orders first: τ_1 = " in printed

    results = load(out / "under_expressive")
    assert results["final_params"].shape[1] == 5 + 1 + 5 == 11
    assert results.metadata["kinds"] == ["spurious"] * 8
    assert np.all(results["kl"][:, -1] > 0.1)
    assert re.search(r"under-expressive RBM: P = 11 < 31 couplings: 8/8 spurious, KL = 0\.\d+ nats", printed)
