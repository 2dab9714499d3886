"""Running an experiment: build model and target, integrate a batch, analyse, write results and figures.

The output folder belongs to one run at a time: the run holds an exclusive lock on
``OUT/.ebmflow.lock`` (`fcntl.flock`, released when the process ends, even if it is
killed), so a second run into the same folder fails at once instead of interleaving files.
What is already in the folder decides what a run may do (`_previous`):

- results of a *different* experiment (another stored configuration) are kept unless
  ``overwrite``: replacing someone's results must be asked for;
- an unfinished run of the *same* experiment (status ``partial`` or ``interrupted``) is kept
  unless ``resume`` (continue from its finished members) or ``overwrite`` (start again):
  restarting silently would throw finished work away;
- a complete run of the same experiment is replaced: a rerun recomputes the same members
  from the same seeds, so nothing is lost.
"""

import contextlib
import dataclasses
import errno
import fcntl
import importlib.metadata
import itertools
import json
import os
import platform
import signal
import threading
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pydantic
import tqdm

from .. import targets as targets_
from .._devices import is_writer
from .._tree import flatten, take
from ..analysis._fixed_point import fixed_point
from ..analysis._stability import stability
from ..dynamics._flow import flow_batch
from ..dynamics._solution import RESULTS, FlowSolution, code_message, result_codes, result_names
from ..dynamics._summary import summarize
from ..dynamics._train import train_batch
from ..energies import RBM, CouplingModel, HigherOrderIsing, Ising, MLPEnergy, PottsPairwise, PottsRBM, WalshModel
from ..exact._target import Target
from ..io._plots import plot_all, significant_orders
from ..io._results import OutputError, load, remove_stale_temporaries, save, write_json
from ..space import Potts, Spins
from ._config import Experiment

ANALYSIS_LIMIT = 4000  # parameters: dense Hessians above this are skipped in batch runs

ARRAYS = {
    "ts": "save times (T,); for discrete training, step × learning rate",
    "kl": "KL(p_D || p_θ) in nats (B, T)",
    "grad_norm": "||∇_θ L|| (B, T)",
    "moment_mismatch": "||m^θ_k - m^D_k|| per order k = 0..n (B, T, n+1)",
    "delta": "relative moment mismatch Δ_k(t) (B, T, n+1); NaN where undefined",
    "coupling_error": "||J_k - J*_k|| per order (B, T, n+1)",
    "coupling_norms": "||J_k|| per order (B, T, n+1)",
    "target_coupling_norms": "||J*_k|| per order (n+1,)",
    "learning_times": "τ_k(alpha), first passage of Δ_k below alpha (B, n+1); inf if never",
    "result": "result code per member (B,); names in metadata['result_names']",
    "t_final": "time reached per member (B,)",
    "num_steps": "solver steps attempted (B,)",
    "gradient_evaluations": "exact gradient evaluations (B,); -1 if unknown",
    "hessian_evaluations": "exact Hessian evaluations (B,)",
    "initial_params": "flattened initial parameters (B, P)",
    "final_params": "flattened parameters at the last save time (B, P)",
    "target_probs": "target probabilities over the q**n states (q = 2: spins), index order (q**n,)",
    "eigenvalues": "Hessian eigenvalues at the endpoint, ascending (B, P); NaN if not analysed",
    "n_stable": "stable directions at the endpoint (B,); -1 if not analysed",
    "n_neutral": "neutral directions (B,); -1 if not analysed",
    "n_unstable": "unstable directions (B,); -1 if not analysed",
    "rank": "rank of the coupling Jacobian at the endpoint (B,); -1 if not analysed",
}
SHARED_ARRAYS = ("ts", "target_coupling_norms", "target_probs")  # the same for every member
ANALYSIS_ARRAYS = ("eigenvalues", "n_stable", "n_neutral", "n_unstable", "rank")  # from the analysis, at the end
MEMBER_ARRAYS = tuple(k for k in ARRAYS if k not in SHARED_ARRAYS + ANALYSIS_ARRAYS)  # per member, after each group
LOCK = ".ebmflow.lock"  # in the output folder: the lock a run holds


def model_space(config: Experiment):
    """The state space of the configured model: ``Spins(n)``, or ``Potts(n, q)``."""
    return Spins(config.model.n) if config.model.q is None else Potts(config.model.n, config.model.q)


def build_model(config: Experiment, key, scale):
    """The configured student, initialised from ``key`` with weight std ``scale``."""
    m, dtype = config.model, jnp.dtype(config.dtype)
    if m.type == "potts_rbm":
        return PottsRBM.init(key, m.n, m.q, m.n_hidden, scale=scale, hidden=m.hidden, bias_scale=m.bias_scale,
                             dtype=dtype)
    if m.type == "potts_pairwise":
        return PottsPairwise.init(key, m.n, m.q, scale=scale, dtype=dtype)
    if m.type == "coupling_model":
        return CouplingModel.init(key, model_space(config), scale=scale, dtype=dtype)
    if m.type == "rbm":
        return RBM.init(key, m.n, m.n_hidden, scale=scale, hidden=m.hidden, bias_scale=m.bias_scale, dtype=dtype)
    if m.type == "ising":
        return Ising.init(key, m.n, scale=scale, dtype=dtype)
    if m.type == "higher_order_ising":
        return HigherOrderIsing.init(key, m.n, max_order=m.max_order, scale=scale, dtype=dtype)
    if m.type == "mlp":
        return MLPEnergy.init(key, model_space(config), widths=m.widths, activation=m.activation, scale=scale,
                              dtype=dtype)
    return WalshModel.init(key, m.n, scale=scale, dtype=dtype)


def build_target(config: Experiment) -> Target:
    """The configured target (teacher distribution or empirical samples)."""
    t, n, dtype = config.target, config.model.n, jnp.dtype(config.dtype)
    key = jax.random.key(t.seed)
    if t.type == "samples":
        target = Target.from_samples(t.path, q=config.model.q, encoding=t.encoding, pseudocount=t.pseudocount,
                                     dtype=dtype)
        if target.n != n:
            raise ValueError(f"samples in {t.path!r} have n = {target.n} columns but model.n = {n}")
        return target
    if t.type == "alignment":
        alignment = targets_.read_alignment(t.path, t.alphabet, threshold=t.threshold if t.reweight else None,
                                            unknown=t.unknown, format=t.format)
        if alignment.q != config.model.q:
            raise ValueError(f"the alphabet {alignment.alphabet!r} has q = {alignment.q} colours; model.q is "
                             f"{config.model.q}")
        target = alignment.target(t.columns, pseudocount=t.pseudocount, dtype=dtype)
        return Target(target.probs, f"alignment {t.path!r}, columns {t.columns}, {len(alignment.names)} sequences, "
                      f"effective number {alignment.n_effective:.6g}; {target.description}", space=target.space)
    stds = {int(k): v for k, v in t.stds.items()}
    teacher = {
        "random_ising": lambda: targets_.random_ising(key, n, stds, t.density, dtype),
        "random_potts": lambda: targets_.random_potts(key, n, config.model.q, stds, t.density, dtype),
        "blume_capel": lambda: targets_.blume_capel(n, t.beta, t.j2, t.j3, t.periodic, dtype),
        "ising_chain": lambda: targets_.ising_chain(n, t.beta, dtype=dtype),
        "ising_grid": lambda: targets_.ising_grid(t.rows, t.cols, t.beta, dtype=dtype),
        "edwards_anderson": lambda: targets_.edwards_anderson(key, t.rows, t.cols, t.beta, dtype=dtype),
        "sparse_parity": lambda: targets_.sparse_parity(n, t.sites, t.beta, dtype=dtype),
    }[t.type]()
    target = Target.from_model(teacher)
    return Target(target.probs, f"teacher {t.type} (seed {t.seed})", space=target.space)


def _optimizer(d) -> optax.GradientTransformation:
    return {"sgd": optax.sgd, "momentum": lambda lr: optax.sgd(lr, momentum=0.9), "adam": optax.adam}[d.optimizer](
        d.learning_rate
    )


def batch_mesh(config: Experiment):
    """The devices a group's members are split over (None: one device)."""
    devices = jax.devices()
    count = len(devices) if config.batch.devices == "all" else config.batch.devices
    if count > len(devices):
        raise ValueError(f"batch.devices = {count}, but JAX sees {len(devices)} device(s); on CPU pass "
                         f"--devices {count} to the command line")
    return None if count == 1 else jax.sharding.Mesh(np.asarray(devices[:count]), ("batch",))


def _integrate(config: Experiment, models, target: Target, progress: bool):
    d, mesh = config.dynamics, batch_mesh(config)
    if d.method == "flow":
        return flow_batch(models, target, d.t1, mesh=mesh, **d.flow_options(progress=progress))
    return train_batch(models, target, _optimizer(d), d.steps, num_saves=d.num_saves, penalty=d.penalty,
                       time_per_step=d.learning_rate, mesh=mesh)


def versions() -> dict:
    return dict(ebmflow=importlib.metadata.version("ebmflow"), jax=jax.__version__, equinox=eqx.__version__,
                diffrax=diffrax.__version__, numpy=np.__version__, python=platform.python_version(),
                device=str(jax.devices()[0]))


@dataclasses.dataclass
class Outcome:
    """What `run_experiment` produced: paths, a JSON-ready summary, and how the run ended.

    ``complete``: every member integrated and analysed, nothing interrupted; ``failed``: members
    whose run failed (their own result code: max_steps, NaN, ...); ``figures``: the paths written.
    """

    results_path: Path
    summary: dict
    complete: bool
    failed: int
    figures: list[Path]


def run_experiment(config: Experiment, out: str | Path, *, progress: bool = False, log=print, formats=("png",),
                   resume: bool = False, overwrite: bool = False) -> Outcome:
    """Run ``config`` into the folder ``out``: ``results.npz`` after every group of members, ``summary.json``, figures.

    A failed member has its own result code and does not stop the batch. On KeyboardInterrupt
    the members finished so far are kept (status ``"interrupted"``), and an interrupt while the
    last files are written (or the figures drawn) still leaves ``results.npz`` and
    ``summary.json`` written, with that status. ``formats``: figure file types (none: ``()``).

    The folder is locked for the run, and what it already holds decides what may happen (see the
    module's docstring): ``resume`` continues an unfinished run of the same experiment from its
    finished members (the same results as an uninterrupted run; a folder without results starts
    from member 0), ``overwrite`` replaces whatever is there. A folder that cannot be used
    raises `OutputError` (an `OSError` naming the path and the cause). In a run of several
    processes, process 0 locks, cleans and writes the folder; every process reads the results
    already there, so ``resume`` needs a folder on a file system they share.
    """
    start = time.time()
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume keeps the finished members, overwrite "
                         "discards them")
    target = build_target(config)  # before creating `out`: a bad samples file leaves nothing behind
    out = _make_folder(out)
    with _locked(out):
        kept = _previous(out, config, resume=resume, overwrite=overwrite)
        if is_writer():
            for stale in remove_stale_temporaries(out):
                log(f"removed {stale.name}, left behind by a run that was killed")
        return _run(config, target, out, kept, start, progress, log, formats)


def _run(config: Experiment, target: Target, out: Path, kept: dict | None, start: float, progress, log,
         formats) -> Outcome:
    """The run itself, in a locked folder, after the ``kept`` members (a resumed run's, or None)."""
    b = config.batch
    scales = b.scales or [config.model.scale] * b.members
    seeds = [config.seed + i for i in range(b.members)]
    done = 0 if kept is None else kept["kl"].shape[0]
    parts = [] if kept is None else [kept]
    status, analyses = "complete", None
    metadata = dict(
        name=config.name, config=config.model_dump(), versions=versions(), seeds=seeds, scales=scales,
        dtype=config.dtype, target=target.description, arrays=ARRAYS, result_names=result_names(),
        float32_note="float32 is a speed option" if config.dtype == "float32" else "", resumed_from=done,
    )
    if done:
        log(f"resuming: members 0..{done - 1} are finished")
    path = out / "results.npz"
    bar = tqdm.tqdm(total=b.members, initial=done, desc="batch", unit="member",
                    disable=not progress or b.members == 1)
    try:
        # Groups start at multiples of b.group (a resumed run stopped at one), so the members of each
        # compiled call, and therefore the results, are those of an uninterrupted run.
        for lo in range(done, b.members, b.group):
            hi = min(lo + b.group, b.members)
            keys = jnp.stack([jax.random.key(s) for s in seeds[lo:hi]])
            # The scales in the experiment's dtype: float64 scales would promote a float32 model to float64.
            group_scales = jnp.asarray(scales[lo:hi], dtype=config.dtype)
            models = eqx.filter_vmap(lambda k, s: build_model(config, k, s))(keys, group_scales)
            parts.append(_member_arrays(models, _integrate(config, models, target, progress), config, target))
            bar.update(hi - lo)
            log(f"members {lo}..{hi - 1} integrated ({time.time() - start:.1f} s)")
            _write(path, metadata | dict(status="partial", members_done=hi), parts, None)
    except KeyboardInterrupt:
        status = "interrupted"
        log(f"interrupted: kept {_members(parts)} of {b.members} members")
    bar.close()
    done = _members(parts)
    if status == "complete" and config.analysis.stability:
        try:
            analyses = _analyse(config, _concatenate(parts), target, log, progress)
        except KeyboardInterrupt:  # keep the trajectories, drop the unfinished analysis
            status = "interrupted"
            log(f"interrupted during the stability analysis: kept {done} of {b.members} members, no analysis")

    def finish(status: str) -> dict:
        meta = metadata | dict(status=status, members_done=done, wall_time_s=time.time() - start)
        arrays = _write(path, meta, parts, analyses)
        summary = _summary(config, arrays, analyses, meta)
        write_json(out / "summary.json", summary)
        return summary

    figures = []
    try:
        summary = finish(status)
        if done and formats and is_writer():
            figures = plot_all(load(path), out, formats)
    except KeyboardInterrupt:
        # A (second) Ctrl-C while the last files were written or the figures drawn: write the results and
        # the summary again, as interrupted, and let no further Ctrl-C cut that short.
        status, figures = "interrupted", []
        log("interrupted while writing the results or drawing the figures: results and summary written as "
            "interrupted; `ebmflow plot` draws the figures")
        with _interrupts_ignored():
            summary = finish(status)
    return Outcome(path, summary, status == "complete", summary.get("failed", 0), figures)


@contextlib.contextmanager
def _interrupts_ignored():
    """Ignore Ctrl-C (SIGINT) inside the block, so that the last writes of an interrupted run finish.

    Signal handlers can only be changed in the main thread; elsewhere the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _make_folder(out: str | Path) -> Path:
    """Create the output folder; a path that cannot be one is an error naming it and the cause."""
    if not str(out).strip():  # Path("") is ".": an empty --out would write into the current folder
        raise ValueError(f"the output folder must be a path; got {str(out)!r}")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
        cause = (err.strerror if blocker is None else "it is a file, not a folder" if blocker == out
                 else f"{blocker} is a file, not a folder")
        raise OutputError(err.errno, cause, str(out)) from None
    return out


@contextlib.contextmanager
def _locked(out: Path):
    """Hold an exclusive lock on ``out/.ebmflow.lock`` for the block; a folder locked by another run is an error.

    `fcntl.flock` locks belong to the open file, so the operating system releases them when the
    process ends, killed or not: no stale lock is left (the empty file stays). Only the process
    that writes (process 0) locks.
    """
    if not is_writer():
        yield
        return
    try:
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise OutputError(err.errno, err.strerror, str(out)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(errno.EBUSY, f"another ebmflow run is writing into this folder (it holds {LOCK}); "
                              "wait for it to finish, or choose another --out", str(out)) from None
        yield
    finally:
        os.close(fd)


def _previous(out: Path, config: Experiment, *, resume: bool, overwrite: bool) -> dict | None:
    """The finished members to keep from ``out/results.npz`` (``resume``), or None to start from member 0.

    Raises `OutputError` where the folder holds results that this run must not replace (see the
    module's docstring).
    """
    path = out / "results.npz"
    if overwrite or not path.exists():
        return None
    try:
        results = load(path)
    except ValueError as err:
        raise OutputError(errno.EEXIST, f"it holds a results.npz that is not readable ebmflow results ({err}); "
                          "pass --overwrite to replace it, or choose another --out", str(out)) from None
    meta = results.metadata
    changes = _differences(_with_defaults(meta.get("config") or {}), json.loads(json.dumps(config.model_dump())))
    if changes:
        what = "--resume needs the same experiment file" if resume else "pass --overwrite to replace them"
        raise OutputError(errno.EEXIST, f"it holds the results of another experiment ({'; '.join(changes[:5])}); "
                          f"{what}, or choose another --out", str(out))
    done = int(meta.get("members_done", 0))
    if resume:
        return {k: results[k] for k in (*SHARED_ARRAYS, *MEMBER_ARRAYS)} if done else None
    if meta.get("status") != "complete" and done:
        raise OutputError(errno.EEXIST, f"it holds an unfinished run of this experiment (status {meta.get('status')!r}"
                          f", {done} of {config.batch.members} members finished); pass --resume to continue it, or "
                          "--overwrite to start again", str(out))
    return None


def _with_defaults(stored: dict) -> dict:
    """A stored configuration with the settings added to ebmflow since it was written at their defaults."""
    try:
        return json.loads(json.dumps(Experiment.model_validate(stored).model_dump()))
    except (pydantic.ValidationError, ValueError):  # not valid today: compare it as it is
        return stored


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"key: OLD there, NEW here"`` for every setting that differs between two stored configurations."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {a!r} there, {b!r} here")
    return changes


def _member_arrays(models, sol: FlowSolution, config: Experiment, target: Target) -> dict:
    """One group's results as NumPy arrays: `MEMBER_ARRAYS` (leading axis: members) and `SHARED_ARRAYS`."""
    params = lambda m: np.asarray(jax.vmap(lambda x: flatten(x)[0])(m))  # noqa: E731
    return dict(
        ts=np.asarray(sol.ts[0]), target_coupling_norms=np.asarray(sol.target_coupling_norms[0]),
        target_probs=np.asarray(target.probs), kl=np.asarray(sol.kl), grad_norm=np.asarray(sol.grad_norm),
        moment_mismatch=np.asarray(sol.moment_mismatch), delta=np.asarray(sol.delta),
        coupling_error=np.asarray(sol.coupling_error), coupling_norms=np.asarray(sol.coupling_norms),
        learning_times=np.asarray(sol.learning_times(config.analysis.alpha)), result=result_codes(sol.result),
        t_final=np.asarray(sol.t_final), num_steps=np.asarray(sol.stats["num_steps"]),
        gradient_evaluations=np.asarray(sol.stats["gradient_evaluations"]),
        hessian_evaluations=np.asarray(sol.stats["hessian_evaluations"]),
        initial_params=params(models), final_params=params(take(sol.models, (slice(None), -1))),
    )


def _members(parts: list[dict]) -> int:
    return sum(part["kl"].shape[0] for part in parts)


def _concatenate(parts: list[dict]) -> dict:
    """The arrays of every finished member, groups (and a resumed run's kept members) one after the other.

    With no finished member every array is empty.
    """
    if not parts:
        return {k: np.zeros((0,)) for k in (*SHARED_ARRAYS, *MEMBER_ARRAYS)}
    return {k: parts[0][k] for k in SHARED_ARRAYS} | {k: np.concatenate([p[k] for p in parts]) for k in MEMBER_ARRAYS}


def _write(path, metadata, parts, analyses) -> dict:
    arrays = _concatenate(parts)
    if analyses is not None:
        arrays |= {k: analyses[k] for k in ANALYSIS_ARRAYS}
        reports = analyses["reports"]
        metadata = metadata | dict(
            refinements=analyses["refinements"],
            kinds=[None if r is None else r.kind for r in reports],
            stability=[None if r is None else r.to_dict() | {"eigenvalues": None, "singular_values": None}
                       for r in reports],
        )
    save(path, metadata, arrays)
    return arrays


def _as_solution(arrays: dict) -> FlowSolution:
    """The stored arrays of a batch as a `FlowSolution` (without its models), for `summarize` and ``ok``.

    The result codes are rebuilt as `RESULTS` items; ``initial_mismatch`` is the mismatch at the
    first save time, ``t = 0``.
    """

    def item(code):  # the RESULTS item of one integer code (`RESULTS.where` takes a scalar predicate)
        result = RESULTS.successful
        for value, name in enumerate(result_names()):
            result = RESULTS.where(code == value, getattr(RESULTS, name), result)
        return result

    codes = jnp.asarray(arrays["result"])
    result = jax.vmap(item)(codes)
    members = codes.shape[0]
    return FlowSolution(
        ts=np.broadcast_to(arrays["ts"], (members, arrays["ts"].shape[0])), models=None, kl=arrays["kl"],
        grad_norm=arrays["grad_norm"], moment_mismatch=arrays["moment_mismatch"],
        coupling_error=arrays["coupling_error"], coupling_norms=arrays["coupling_norms"],
        initial_mismatch=arrays["moment_mismatch"][:, 0],
        target_coupling_norms=np.broadcast_to(arrays["target_coupling_norms"],
                                              (members, arrays["target_coupling_norms"].shape[0])),
        t_final=arrays["t_final"], result=result,
        stats={k: arrays[k] for k in ("num_steps", "gradient_evaluations", "hessian_evaluations")},
    )


def _analyse(config, arrays, target, log, progress=False):
    """Stability at each successful member's endpoint (dense, up to ANALYSIS_LIMIT parameters).

    The endpoints are rebuilt from the stored ``final_params``, so a resumed run analyses its kept
    members exactly as an uninterrupted one. With ``analysis.refine`` the endpoint is first refined
    by `fixed_point`; the refined point is analysed where refinement converged, the endpoint otherwise.
    The analysis runs in float64 (as `fixed_point` and `stability` do), for float32 runs too.
    """
    reports, refinements = [], []
    target64 = target.astype(jnp.float64)  # cast once, not per member
    unflatten = flatten(build_model(config, jax.random.key(0), config.model.scale))[1]
    ok = np.asarray(_as_solution(arrays).ok)
    for i in tqdm.tqdm(range(ok.size), desc="stability", unit="endpoint", disable=not progress):
        member = unflatten(jnp.asarray(arrays["final_params"][i]))
        if not ok[i] or arrays["final_params"].shape[1] > ANALYSIS_LIMIT:
            reports.append(None)
            refinements.append("not analysed (failed run or too many parameters)")
            continue
        if config.analysis.refine:
            point = fixed_point(member, target64, max_steps=config.analysis.refine_steps)
            refinements.append(point.message)
            member = point.model if point.converged else member
        reports.append(stability(member, target64))
    log(f"stability analysed at {sum(r is not None for r in reports)} endpoints")
    size = max((r.n_params for r in reports if r is not None), default=0)
    eig = np.full((len(reports), size), np.nan)
    for i, r in enumerate(reports):
        if r is not None:
            eig[i] = r.eigenvalues
    count = lambda name: np.array([-1 if r is None else getattr(r, name) for r in reports])  # noqa: E731
    return dict(reports=reports, refinements=refinements, eigenvalues=eig, n_stable=count("n_stable"),
                n_neutral=count("n_neutral"), n_unstable=count("n_unstable"), rank=count("rank"))


def _summary(config, arrays, analyses, meta) -> dict:
    first_report = analyses["reports"][0] if analyses and analyses["reports"] else None
    taus = arrays["learning_times"]
    n = config.model.n
    summary = dict(
        name=config.name, status=meta["status"], members=config.batch.members, members_done=meta["members_done"],
        final_kl=float(arrays["kl"][0, -1]) if arrays["kl"].size else None,
        kind=first_report.kind if first_report else None,
        n_stable=first_report.n_stable if first_report else None,
        n_neutral=first_report.n_neutral if first_report else None,
        n_unstable=first_report.n_unstable if first_report else None,
        rank=first_report.rank if first_report else None,
        refinement=analyses["refinements"][0] if analyses and config.analysis.refine else None,
        learning_times={str(k): float(taus[0, k]) for k in range(1, n + 1)} if taus.size else {},
        alpha=config.analysis.alpha,
        result=code_message(arrays["result"][0]) if arrays["result"].size else None,
        wall_time_s=meta["wall_time_s"], versions=meta["versions"], dtype=config.dtype,
    )
    if not arrays["kl"].size:
        return summary
    batch = summarize(_as_solution(arrays), config.analysis.kl_eps, config.analysis.alpha)
    summary["failed"] = batch["members"] - batch["ok"]  # members whose run failed, and their result codes
    summary["failures"] = {name: count for name, count in batch["results"].items()
                           if name not in ("successful", "steady_state")}
    if config.batch.members > 1:
        summary["batch"] = batch
        if analyses:
            kinds = [r.kind if r else "failed/not analysed" for r in analyses["reports"]]
            summary["batch"]["kinds"] = {k: kinds.count(k) for k in sorted(set(kinds))}
    summary["findings"] = _findings(config, arrays, analyses, batch)
    return summary


def _findings(config, arrays, analyses, batch: dict) -> str:
    """One line saying what the run found: expressivity, endpoints, final KL, neutral directions, order of learning.

    E.g. ``P = 53 >= 31 couplings: 8/8 data-consistent, KL < 1e-13 nats, 22 = P - rank G neutral
    directions; low orders first: τ_1 = 0.4 < τ_2 = 3.1 < τ_3 = 25 (medians)``.
    """
    members, size = arrays["final_params"].shape
    couplings = model_space(config).size - 1
    words = [f"{batch['ok']}/{members} finished"]
    if analyses:
        kinds = [r.kind for r in analyses["reports"] if r is not None]
        words = [f"{kinds.count(k)}/{members} {k}" for k in sorted(set(kinds))]
    if batch["ok"] < members:
        failed = [name for name in batch["results"] if name not in ("successful", "steady_state")]
        words.append(f"{members - batch['ok']}/{members} failed ({', '.join(failed)})")
    kl = batch["final_kl"]
    if kl:
        bound = max(abs(kl["min"]), abs(kl["max"]))
        words.append(f"KL < {10.0 ** np.ceil(np.log10(bound)):.0e} nats" if 0 < bound < 1e-8 else
                     f"KL = {kl['min']:.3g} nats" if np.isclose(kl["min"], kl["max"], rtol=1e-3) else
                     f"KL = {kl['min']:.3g} to {kl['max']:.3g} nats")
    if analyses:
        analysed = analyses["n_neutral"] >= 0
        neutral, counted = analyses["n_neutral"][analysed], size - analyses["rank"][analysed]
        if neutral.size and np.all(neutral == counted) and np.all(neutral == neutral[0]):
            words.append(f"{neutral[0]} = P - rank G neutral directions")
        elif neutral.size:
            words.append(f"neutral directions {sorted(set(neutral.tolist()))}, "
                         f"P - rank G {sorted(set(counted.tolist()))}")
    line = f"P = {size} {'>=' if size >= couplings else '<'} {couplings} couplings: " + ", ".join(words)
    # The hierarchy over the orders the target has couplings of (a random teacher of orders 1..3, say).
    norms = arrays["target_coupling_norms"]
    orders = significant_orders(norms, config.dtype)  # smaller couplings are the dtype's rounding
    times = {k: batch["learning_times"][k]["median"] for k in orders if k in batch["learning_times"]}
    if not batch["ok"] or len(orders) < 2:  # no finished run, or no hierarchy to speak of
        return line
    if len(times) == len(orders):
        values = [f"τ_{k} = {times[k]:.2g}" for k in orders]
        if all(times[a] < times[b] for a, b in itertools.pairwise(orders)):
            line += f"; low orders first: {' < '.join(values)} (medians)"
        else:
            line += f"; learning times {', '.join(values)} (medians, not in order of k)"
    else:
        missing = [str(k) for k in orders if k not in times]
        line += f"; order{'s' * (len(missing) > 1)} {', '.join(missing)} never learned (Δ_k > α)"
    return line
