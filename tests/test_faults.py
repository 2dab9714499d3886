"""Faults of command-line runs: the output folder, concurrent runs, failed members, interrupts, resume, float32.

Every fault ends in one line on stderr and a documented exit code (`ebmflow.cli.main`): 1 bad
input, 2 file system or an output folder that cannot be used, 3 a failed batch member, 130
interrupted; and what was finished stays readable. Runs are small (n = 5, 4 hidden units, the
shapes of tests/test_cli.py): compiling dominates, and runs of one shape share their programs.
"""

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ebmflow.cli import _main as _cli, main
from ebmflow.experiments import _run, parse_experiment, run_experiment
from ebmflow.io import load
from ebmflow.io._plots import plot_all, significant_orders
from ebmflow.io._results import Results

BASE = """name = "faults"
seed = {seed}
dtype = "{dtype}"

[model]
n = 5
n_hidden = 4

[target]
type = "random_ising"

[dynamics]
method = "{method}"
t1 = 1e3
num_saves = 21
steady_tol = 1e-7
{dynamics}

[batch]
members = {members}
devices = 1
group = 1

[analysis]
stability = {stability}
"""


def _experiment(tmp_path, *, seed=1, dtype="float64", method="flow", dynamics="", members=2, stability="false",
                name="experiment.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE.format(seed=seed, dtype=dtype, method=method, dynamics=dynamics, members=members,
                                stability=stability))
    return path


@pytest.fixture(scope="module", autouse=True)
def no_compilation_cache():
    """In-process runs never touch the user's compilation cache (the cache has its own test, in a subprocess)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EBMFLOW_COMPILATION_CACHE", "0")
        yield


def _error(capsys, code, expected_code, pattern) -> str:
    """Check a clean failure: the exit code and one ``ebmflow: error:`` line matching ``pattern``, no traceback."""
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ebmflow: error: "), err
    assert re.search(pattern, lines[0]), err
    return lines[0]


def _temp_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


# ----------------------------------------------------------------------------- the output folder


def test_empty_out_is_refused(tmp_path, capsys):
    experiment = _experiment(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(experiment), "--out", ""])
    assert exit_.value.code == 1
    assert "argument --out: the output folder must be a path (created if missing); got ''" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"the output folder must be a path; got ''"):
        run_experiment(parse_experiment({"model": {"n": 5}, "target": {"type": "random_ising"}}), "")
    assert os.listdir(tmp_path) == ["experiment.toml"]  # nothing written into the current folder either


def test_out_that_is_a_file(tmp_path, capsys):
    experiment = _experiment(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    code = main(["run", str(experiment), "--out", str(tmp_path / "file"), "--quiet"])
    _error(capsys, code, 2, rf"^ebmflow: error: cannot write {re.escape(str(tmp_path / 'file'))}: it is a file, not a "
           r"folder$")
    code = main(["run", str(experiment), "--out", str(tmp_path / "file" / "out"), "--quiet"])
    _error(capsys, code, 2, rf"cannot write {re.escape(str(tmp_path / 'file' / 'out'))}: "
           rf"{re.escape(str(tmp_path / 'file'))} is a file, not a folder$")
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_out_without_permission(tmp_path, capsys):
    experiment = _experiment(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        code = main(["run", str(experiment), "--out", str(locked / "out"), "--quiet"])
        _error(capsys, code, 2, rf"cannot write {re.escape(str(locked / 'out'))}: Permission denied$")
    finally:
        locked.chmod(0o700)


def test_disk_full_while_writing_keeps_the_finished_results(tmp_path, capsys, monkeypatch):
    """ENOSPC on the second write: exit 2 naming the file and the cause; the first write stays readable."""
    experiment = _experiment(tmp_path)
    out = tmp_path / "out"
    real, calls = np.savez, []

    def savez(file, **arrays):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    code = main(["run", str(experiment), "--out", str(out), "--quiet"])
    _error(capsys, code, 2, rf"^ebmflow: error: cannot write {re.escape(str(out / 'results.npz'))}: No space left on "
           r"device$")
    results = load(out)  # the results of the first group, as written after it
    assert results.metadata["status"] == "partial" and results.metadata["members_done"] == 1
    assert results["kl"].shape[0] == 1 and np.isfinite(results["kl"][0, -1])
    assert _temp_files(out) == []


def test_plot_into_a_folder_without_permission_or_space(tmp_path, capsys, monkeypatch):
    """`ebmflow plot` names the figure it could not write."""
    experiment = _experiment(tmp_path, members=1)
    out = tmp_path / "out"
    assert main(["run", str(experiment), "--out", str(out), "--quiet"]) == 0
    from matplotlib.figure import Figure

    def savefig(self, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", savefig)
    code = main(["plot", str(out)])
    _error(capsys, code, 2, rf"cannot write {re.escape(str(out / 'kl.png'))}: No space left on device$")


# ----------------------------------------------------------------------------- concurrent runs and reruns


def test_a_second_run_into_a_locked_folder_fails_at_once(tmp_path, capsys):
    experiment = _experiment(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".results.npz.abc123.tmp"
    stale.write_bytes(b"PK")
    with open(out / ".ebmflow.lock", "w") as held:  # as another run holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["run", str(experiment), "--out", str(out), "--quiet"])
    _error(capsys, code, 2, rf"cannot write {re.escape(str(out))}: another ebmflow run is writing into this folder "
           r"\(it holds \.ebmflow\.lock\); wait for it to finish, or choose another --out$")
    assert stale.exists()  # a temporary file of the run holding the lock is not touched
    assert not (out / "results.npz").exists()


def test_rerun_rules(tmp_path, capsys):
    """Another experiment's results are kept unless --overwrite; the same complete experiment is rerun."""
    first, other = _experiment(tmp_path, seed=1), _experiment(tmp_path, seed=7, name="other.toml")
    out = tmp_path / "out"
    assert main(["run", str(first), "--out", str(out), "--quiet"]) == 0
    assert main(["run", str(first), "--out", str(out), "--quiet"]) == 0  # same experiment: replaced
    assert load(out).metadata["seeds"] == [1, 2]
    code = main(["run", str(other), "--out", str(out), "--quiet"])
    _error(capsys, code, 2, rf"cannot write {re.escape(str(out))}: it holds the results of another experiment "
           r"\(seed: 1 there, 7 here\); pass --overwrite to replace them, or choose another --out$")
    assert load(out).metadata["seeds"] == [1, 2]
    assert main(["run", str(other), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert load(out).metadata["seeds"] == [7, 8]
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(other), "--out", str(out), "--resume", "--overwrite"])
    assert exit_.value.code == 1
    assert "argument --overwrite: not allowed with argument --resume" in capsys.readouterr().err
    (out / "results.npz").write_text("not an archive")
    code = main(["run", str(other), "--out", str(out), "--quiet"])
    _error(capsys, code, 2, r"it holds a results\.npz that is not readable ebmflow results \(.*not an \.npz archive\)"
           r"\); pass --overwrite to replace it")


def test_stale_temporary_files_are_removed(tmp_path):
    experiment = _experiment(tmp_path, members=1)
    out = tmp_path / "out"
    out.mkdir()
    for name in (".results.npz.k1ll3d.tmp", ".summary.json.x.tmp", ".kl.png.x.tmp", ".batch.pdf.x.tmp",
                 ".other.npz.x.tmp", "results.npz.tmp"):
        (out / name).write_bytes(b"half a file")
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    assert _temp_files(out) == [".other.npz.x.tmp", "results.npz.tmp"]  # only the writer's own pattern


# ----------------------------------------------------------------------------- failed members and figures


def test_failed_members_exit_3_with_everything_written(tmp_path, capsys):
    """max_steps = 1: every member fails; the results, summary and figures (NaN trajectories) are written."""
    experiment = _experiment(tmp_path, dynamics="max_steps = 1", stability="true")
    out = tmp_path / "out"
    assert main(["run", str(experiment), "--out", str(out)]) == 3
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"ebmflow: 2 of 2 runs failed (max_steps_reached); their result codes and "
                                    f"messages are in {out / 'results.npz'}")
    assert "found: P = 29 < 31 couplings: 2/2 failed (max_steps_reached)" in captured.out
    results = load(out)
    assert results.metadata["status"] == "complete" and results["kl"].shape[0] == 2
    assert np.all(np.isnan(results["kl"][:, -1]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 2 and summary["failures"] == summary["batch"]["results"] == {"max_steps_reached": 2}
    assert {p.name for p in out.glob("*.png")} == {"kl.png", "hierarchy.png", "batch.png"}  # no analysed endpoint


def test_huge_learning_rate_still_gives_figures_and_summary(tmp_path, capsys):
    """Training at learning rate 1e6 ends at a degenerate point (every Hessian eigenvalue 0): drawn, not a crash."""
    experiment = _experiment(tmp_path, method="train", dynamics="learning_rate = 1e6\nsteps = 200", stability="true")
    out = tmp_path / "out"
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "faults: complete, 2 of 2 runs" in printed and "found: P = 29 < 31 couplings" in printed
    results = load(out)
    assert np.all(results["kl"][:, -1] > 1e3)
    assert {p.name for p in out.glob("*.png")} == {"kl.png", "hierarchy.png", "spectrum.png", "batch.png"}
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


def test_figures_skip_non_finite_values(tmp_path, recwarn):
    """NaN, ±inf and all-zero data (failed and degenerate runs) give figures, without matplotlib's errors."""
    ts = np.concatenate([[0.0], np.logspace(-3, 3, 7)])
    kl = np.array([[1.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan], np.full(8, np.inf)])
    per_order = np.full((2, 8, 4), np.nan)
    per_order[1] = np.inf
    eigenvalues = np.array([np.zeros(6), np.full(6, np.nan)])
    results = Results(
        {"config": {"model": {"n": 3}, "analysis": {"alpha": 0.1}}, "kinds": ["not stationary", None]},
        {"ts": ts, "kl": kl, "delta": per_order, "coupling_norms": per_order, "target_coupling_norms": np.zeros(4),
         "learning_times": np.full((2, 4), np.inf), "eigenvalues": eigenvalues, "n_stable": np.array([0, -1]),
         "n_neutral": np.array([6, -1]), "n_unstable": np.array([0, -1])},
    )
    paths = plot_all(results, tmp_path)
    assert {p.name for p in paths} == {"kl.png", "hierarchy.png", "spectrum.png", "batch.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    assert not [w for w in recwarn if "log-scaled" in str(w.message)]


# ----------------------------------------------------------------------------- interrupts


def _interrupt(monkeypatch, module, name, *, on_call=1, then=None):
    """Make call number ``on_call`` of ``module.name`` raise KeyboardInterrupt, as Ctrl-C would; later calls run
    ``then()`` and the real function. Returns the list of calls."""
    real, calls = getattr(module, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            raise KeyboardInterrupt
        if then is not None and len(calls) > on_call:
            then()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def _interrupted(out: Path):
    summary = json.loads((out / "summary.json").read_text())
    results = load(out)
    assert summary["status"] == results.metadata["status"] == "interrupted"
    return summary, results


def test_interrupt_while_drawing_the_figures(tmp_path, capsys, monkeypatch):
    experiment = _experiment(tmp_path)
    out = tmp_path / "out"
    _interrupt(monkeypatch, _run, "plot_all")
    assert main(["run", str(experiment), "--out", str(out)]) == 130
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "interrupted while writing the results or drawing the figures" in captured.out
    assert f"figures: not drawn (interrupted); `ebmflow plot {out}` draws them" in captured.out
    summary, results = _interrupted(out)
    assert summary["members_done"] == 2 and results["kl"].shape[0] == 2  # every member kept
    assert main(["plot", str(out)]) == 0


def test_second_interrupt_during_the_summary(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the integration, again while the summary is made, and a third (real SIGINT) while it is
    written again: the summary is written, as interrupted, and the exit code is 130."""
    experiment = _experiment(tmp_path)
    out = tmp_path / "out"
    _interrupt(monkeypatch, _run, "_integrate")  # the first group: nothing finished
    calls = _interrupt(monkeypatch, _run, "_summary", then=lambda: os.kill(os.getpid(), signal.SIGINT))
    handler = signal.getsignal(signal.SIGINT)
    assert main(["run", str(experiment), "--out", str(out)]) == 130
    assert len(calls) == 2 and signal.getsignal(signal.SIGINT) is handler  # the SIGINT was ignored, then restored
    captured = capsys.readouterr()
    assert captured.err == "" and "no run finished" in captured.out
    summary, results = _interrupted(out)
    assert summary["members_done"] == 0 and results["kl"].shape[0] == 0


def test_interrupt_while_printing(tmp_path, capsys, monkeypatch):
    """Ctrl-C after the run, while the command line prints: exit 130, one line, the files complete."""
    experiment = _experiment(tmp_path, members=1)
    out = tmp_path / "out"
    _interrupt(monkeypatch, _cli, "_print_summary")
    assert main(["run", str(experiment), "--out", str(out)]) == 130
    assert capsys.readouterr().err == "ebmflow: interrupted\n"
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"


# ----------------------------------------------------------------------------- resume


def _drop_settings(path: Path, **sections) -> None:
    """Remove settings from the configuration stored in a results file, as if an older ebmflow had written it."""
    with np.load(path) as stored:
        arrays = dict(stored)
    meta = json.loads(str(arrays["metadata"]))
    for section, keys in sections.items():
        for key in keys:
            del meta["config"][section][key]
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_resume_gives_the_results_of_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    experiment = _experiment(tmp_path, members=3, stability="true")
    clean, out = tmp_path / "clean", tmp_path / "out"
    # --resume into a folder without results runs from member 0: the uninterrupted run.
    assert main(["run", str(experiment), "--out", str(clean), "--quiet", "--resume"]) == 0
    with monkeypatch.context() as mp:
        _interrupt(mp, _run, "_integrate", on_call=2)  # Ctrl-C during the second group
        assert main(["run", str(experiment), "--out", str(out), "--quiet"]) == 130
    assert load(out).metadata["members_done"] == 1

    code = main(["run", str(experiment), "--out", str(out), "--quiet"])
    _error(capsys, code, 2, r"it holds an unfinished run of this experiment \(status 'interrupted', 1 of 3 members "
           r"finished\); pass --resume to continue it, or --overwrite to start again$")
    changed = _experiment(tmp_path, seed=5, members=3, stability="true", name="changed.toml")
    code = main(["run", str(changed), "--out", str(out), "--quiet", "--resume"])
    _error(capsys, code, 2, r"another experiment \(seed: 1 there, 5 here\); --resume needs the same experiment file")

    # a run written before settings were added to ebmflow: they count as their defaults, so it resumes
    _drop_settings(out / "results.npz", target=("unknown", "format", "reweight"), analysis=("refine_steps",))
    assert main(["run", str(experiment), "--out", str(out), "--resume"]) == 0
    assert "resuming: members 0..0 are finished" in capsys.readouterr().out
    resumed, reference = load(out), load(clean)
    assert resumed.metadata["status"] == "complete" and resumed.metadata["resumed_from"] == 1
    assert set(resumed) == set(reference)
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    assert resumed.metadata["kinds"] == reference.metadata["kinds"]
    assert resumed.metadata["refinements"] == reference.metadata["refinements"]
    resumed_summary = json.loads((out / "summary.json").read_text())
    reference_summary = json.loads((clean / "summary.json").read_text())
    for key in ("findings", "batch", "final_kl", "kind", "n_neutral", "rank", "learning_times"):
        assert resumed_summary[key] == reference_summary[key], key


# ----------------------------------------------------------------------------- float32


@pytest.mark.parametrize("method, optimizer", [("flow", None), ("train", "sgd"), ("train", "momentum"),
                                               ("train", "adam")])
def test_float32_experiment_runs_end_to_end(method, optimizer, tmp_path):
    dynamics = "" if optimizer is None else f'optimizer = "{optimizer}"\nlearning_rate = 0.05\nsteps = 300'
    experiment = _experiment(tmp_path, dtype="float32", method=method, dynamics=dynamics, stability="true")
    out = tmp_path / "out"
    assert main(["run", str(experiment), "--out", str(out), "--quiet"]) == 0
    results = load(out)
    assert results.metadata["dtype"] == "float32" and results.metadata["status"] == "complete"
    assert results["initial_params"].dtype == results["final_params"].dtype == np.float32
    assert results["kl"].dtype == np.float32
    assert np.all(np.isfinite(results["kl"])) and np.all(results["kl"][:, -1] < results["kl"][:, 0])


def test_float32_experiment_analysis_agrees_with_float64(tmp_path):
    """The endpoint analysis runs in float64 (refined), so float32 rounding does not pass for unstable directions."""
    text = """dtype = "{dtype}"
[model]
type = "potts_rbm"
n = 3
q = 3
n_hidden = 6
scale = 0.01
[target]
type = "blume_capel"
beta = 0.8
[dynamics]
t1 = 1e5
num_saves = 11
rtol = 1e-4
atol = 1e-7
[batch]
members = 1
devices = 1
"""
    kinds = {}
    for dtype in ("float64", "float32"):
        experiment = tmp_path / f"{dtype}.toml"
        experiment.write_text(text.format(dtype=dtype))
        assert main(["run", str(experiment), "--out", str(tmp_path / dtype), "--quiet"]) == 0
        results = load(tmp_path / dtype)
        assert results["final_params"].dtype == np.dtype(dtype)
        summary = json.loads((tmp_path / dtype / "summary.json").read_text())
        kinds[dtype] = summary["kind"]
        n_params = results["final_params"].shape[1]
        # THEORY §5's counting rule at a data-consistent point: rank G stable directions, P - rank G neutral
        np.testing.assert_array_equal(results["n_stable"], results["rank"])
        np.testing.assert_array_equal(results["n_neutral"], n_params - results["rank"])
        np.testing.assert_array_equal(results["n_unstable"], 0)
    assert kinds["float32"] == kinds["float64"] == "data-consistent"


def test_alignment_experiment_reads_letters_gaps_and_weights_as_configured(tmp_path, capsys):
    """An alignment target from an experiment file: custom alphabet, unknown letters as gaps, no reweighting."""
    rows = ["AC-UX", "ACGU.", "GC-UA", "AZGUU", "ACGUU"]  # X and Z are unknown; '.' is a gap in FASTA
    (tmp_path / "family.fasta").write_text("".join(f">s{i}\n{r}\n" for i, r in enumerate(rows)))
    text = """[model]
type = "potts_rbm"
n = 3
q = 5
n_hidden = 2
[target]
type = "alignment"
path = "family.fasta"
alphabet = "ACGU-"
columns = [0, 2, 4]
unknown = "{unknown}"
reweight = false
pseudocount = 0.5
[dynamics]
t1 = 1
num_saves = 3
[batch]
members = 1
devices = 1
[analysis]
stability = false
"""
    experiment = tmp_path / "alignment.toml"
    experiment.write_text(text.format(unknown="gap"))
    assert main(["run", str(experiment), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    # plain count: colours of the kept columns, unknown letters and '.' as the gap (colour 4), unit weights
    colour = {c: i for i, c in enumerate("ACGU-")}
    counts = np.zeros(5**3)
    for r in rows:
        v = [colour.get(r[c], 4) for c in (0, 2, 4)]
        counts[v[0] + 5 * v[1] + 25 * v[2]] += 1
    expected = (counts + 0.5) / (len(rows) + 0.5 * 5**3)
    np.testing.assert_allclose(load(tmp_path / "out")["target_probs"], expected, rtol=1e-12)
    experiment.write_text(text.format(unknown="error"))
    _error(capsys, main(["run", str(experiment), "--out", str(tmp_path / "out2"), "--quiet"]), 1,
           r"sequence 0 \('s0'\) has 'X' at column 4, not in the alphabet 'ACGU-'; pass unknown='gap'")
    assert not (tmp_path / "out2").exists()


def test_orders_below_the_dtypes_rounding_are_not_the_targets():
    """√eps: 3.5e-4 in float32, 1.5e-8 in float64 (relative to the largest order's norm)."""
    norms = np.array([0.0, 2.0, 0.5, 2e-7, 0.0])
    assert significant_orders(norms, "float32") == [1, 2]
    assert significant_orders(norms, "float64") == [1, 2, 3]

# ----------------------------------------------------------------------------- the compilation cache


def test_compilation_cache_can_be_turned_off(monkeypatch):
    args = _cli._parser().parse_args(["run", "x.toml", "--out", "o"])
    monkeypatch.setenv("EBMFLOW_COMPILATION_CACHE", "0")
    assert _cli._compilation_cache(args) is None
    monkeypatch.setenv("EBMFLOW_COMPILATION_CACHE", "1")
    assert _cli._compilation_cache(_cli._parser().parse_args(["run", "x.toml", "--out", "o", "--no-cache"])) is None
    import jax

    assert jax.config.jax_compilation_cache_dir is None


def test_compilation_cache_fills_the_user_cache_folder(tmp_path):
    """A command-line run (a fresh process) keeps its compiled programs in $XDG_CACHE_HOME/ebmflow/jax."""
    experiment = _experiment(tmp_path, members=1)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), EBMFLOW_COMPILATION_CACHE="1")
    command = [sys.executable, "-c", "import sys; from ebmflow.cli import main; sys.exit(main())", "run",
               str(experiment), "--out", str(tmp_path / "out"), "--quiet", "--devices", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    cached = [p.name for p in (tmp_path / "cache" / "ebmflow" / "jax").iterdir()]
    assert len(cached) >= 2  # at least the flow's program and the observables'
    # the batch of flows itself: diffrax's checks are host callbacks, which JAX does not cache unless they are off
    assert any(name.startswith(("jit__vmapped", "jit__mapped", "jit__solve")) for name in cached), cached
