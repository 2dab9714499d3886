"""Running an experiment: build model and target, integrate a batch, analyse, write results."""

import dataclasses
import importlib.metadata
import platform
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from .. import targets as targets_
from .._tree import flatten, take
from ..analysis._fixed_point import fixed_point
from ..analysis._stability import stability
from ..dynamics._flow import flow_batch
from ..dynamics._solution import code_message, result_codes, result_names
from ..dynamics._summary import summarize
from ..dynamics._train import train_batch
from ..energies import RBM, CouplingModel, HigherOrderIsing, Ising, MLPEnergy, PottsPairwise, PottsRBM, WalshModel
from ..exact._target import Target
from ..io._results import save, write_json
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
    "target_probs": "target probabilities over the 2**n states, index order (2**n,)",
    "eigenvalues": "Hessian eigenvalues at the endpoint, ascending (B, P); NaN if not analysed",
    "n_stable": "stable directions at the endpoint (B,); -1 if not analysed",
    "n_neutral": "neutral directions (B,); -1 if not analysed",
    "n_unstable": "unstable directions (B,); -1 if not analysed",
    "rank": "rank of the coupling Jacobian at the endpoint (B,); -1 if not analysed",
}


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
        alignment = targets_.read_alignment(t.path, t.alphabet, threshold=t.threshold)
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
    """What `run_experiment` produced: paths and a JSON-ready summary."""

    results_path: Path
    summary: dict
    complete: bool


def run_experiment(config: Experiment, out: str | Path, *, progress: bool = False, log=print) -> Outcome:
    """Run ``config``, writing ``out/results.npz`` after every group of members and ``out/summary.json``.

    A failed member has its own result code and does not stop the batch. On
    KeyboardInterrupt the members finished so far are kept (status "interrupted").
    """
    start = time.time()
    target = build_target(config)  # before creating `out`: a bad samples file leaves nothing behind
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    b = config.batch
    scales = b.scales or [config.model.scale] * b.members
    seeds = [config.seed + i for i in range(b.members)]
    groups, status = [], "complete"
    metadata = dict(
        name=config.name, config=config.model_dump(), versions=versions(), seeds=seeds, scales=scales,
        dtype=config.dtype, target=target.description, arrays=ARRAYS,
        result_names=result_names(),
        float32_note="float32 is a speed option" if config.dtype == "float32" else "",
    )
    path = out / "results.npz"
    bar = tqdm.tqdm(total=b.members, desc="batch", unit="member", disable=not progress or b.members == 1)
    try:
        for lo in range(0, b.members, b.group):
            hi = min(lo + b.group, b.members)
            keys = jnp.stack([jax.random.key(s) for s in seeds[lo:hi]])
            models = eqx.filter_vmap(lambda k, s: build_model(config, k, s))(keys, jnp.asarray(scales[lo:hi]))
            groups.append((models, _integrate(config, models, target, progress)))
            bar.update(hi - lo)
            log(f"members {lo}..{hi - 1} integrated ({time.time() - start:.1f} s)")
            _write(path, metadata | dict(status="partial", members_done=hi), groups, target, config, None)
    except KeyboardInterrupt:
        status = "interrupted"
        log(f"interrupted: kept {sum(_size(g[1]) for g in groups)} of {b.members} members")
    bar.close()
    done = sum(_size(g[1]) for g in groups)
    analyses = None
    if status == "complete" and config.analysis.stability:
        try:
            analyses = _analyse(config, groups, target, log, progress)
        except KeyboardInterrupt:  # keep the trajectories, drop the unfinished analysis
            status = "interrupted"
            log(f"interrupted during the stability analysis: kept {done} of {b.members} members, no analysis")
    meta = metadata | dict(status=status, members_done=done, wall_time_s=time.time() - start)
    arrays = _write(path, meta, groups, target, config, analyses)
    summary = _summary(config, arrays, analyses, groups, meta)
    write_json(out / "summary.json", summary)
    return Outcome(path, summary, status == "complete")


def _size(sol) -> int:
    return int(np.asarray(sol.kl).shape[0])


def _gather(groups, target, config):
    sols = [g[1] for g in groups]
    cat = lambda f: np.concatenate([np.asarray(f(s)) for s in sols]) if sols else np.zeros((0,))  # noqa: E731
    alpha = config.analysis.alpha
    thetas = lambda which: np.concatenate([  # noqa: E731
        np.asarray(jax.vmap(lambda m: flatten(m)[0])(which(g))) for g in groups
    ]) if groups else np.zeros((0,))
    last = lambda g: take(g[1].models, (slice(None), -1))  # noqa: E731
    return dict(
        ts=np.asarray(sols[0].ts[0]) if sols else np.zeros(0), kl=cat(lambda s: s.kl),
        grad_norm=cat(lambda s: s.grad_norm), moment_mismatch=cat(lambda s: s.moment_mismatch),
        delta=cat(lambda s: s.delta), coupling_error=cat(lambda s: s.coupling_error),
        coupling_norms=cat(lambda s: s.coupling_norms),
        target_coupling_norms=np.asarray(sols[0].target_coupling_norms[0]) if sols else np.zeros(0),
        learning_times=cat(lambda s: s.learning_times(alpha)), result=cat(lambda s: result_codes(s.result)),
        t_final=cat(lambda s: s.t_final), num_steps=cat(lambda s: s.stats["num_steps"]),
        gradient_evaluations=cat(lambda s: s.stats["gradient_evaluations"]),
        hessian_evaluations=cat(lambda s: s.stats["hessian_evaluations"]),
        initial_params=thetas(lambda g: g[0]), final_params=thetas(last), target_probs=np.asarray(target.probs),
    )


def _write(path, metadata, groups, target, config, analyses):
    arrays = _gather(groups, target, config)
    if analyses is not None:
        arrays |= {k: v for k, v in analyses.items() if k not in ("reports", "refinements")}
        reports = analyses["reports"]
        metadata = metadata | dict(
            refinements=analyses["refinements"],
            kinds=[None if r is None else r.kind for r in reports],
            stability=[None if r is None else r.to_dict() | {"eigenvalues": None, "singular_values": None}
                       for r in reports],
        )
    save(path, metadata, arrays)
    return arrays


def _analyse(config, groups, target, log, progress=False):
    """Stability at each successful member's endpoint (dense, up to ANALYSIS_LIMIT parameters).

    With ``analysis.refine`` the endpoint is first refined by `fixed_point`; the
    refined point is analysed where refinement converged, the endpoint otherwise.
    """
    reports, refinements = [], []
    members = [(sol, i) for _, sol in groups for i in range(_size(sol))]
    for sol, i in tqdm.tqdm(members, desc="stability", unit="endpoint", disable=not progress):
        member = take(sol.models, (i, -1))
        if not bool(np.asarray(sol.ok)[i]) or flatten(member)[0].shape[0] > ANALYSIS_LIMIT:
            reports.append(None)
            refinements.append("not analysed (failed run or too many parameters)")
            continue
        if config.analysis.refine:
            point = fixed_point(member, target)
            refinements.append(point.message)
            member = point.model if point.converged else member
        reports.append(stability(member, target))
    log(f"stability analysed at {sum(r is not None for r in reports)} endpoints")
    size = max((r.n_params for r in reports if r is not None), default=0)
    eig = np.full((len(reports), size), np.nan)
    for i, r in enumerate(reports):
        if r is not None:
            eig[i] = r.eigenvalues
    count = lambda name: np.array([-1 if r is None else getattr(r, name) for r in reports])  # noqa: E731
    return dict(reports=reports, refinements=refinements, eigenvalues=eig, n_stable=count("n_stable"),
                n_neutral=count("n_neutral"), n_unstable=count("n_unstable"), rank=count("rank"))


def _summary(config, arrays, analyses, groups, meta) -> dict:
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
    if len(groups) and config.batch.members > 1:
        batch = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *[g[1] for g in groups])
        summary["batch"] = summarize(batch, config.analysis.kl_eps, config.analysis.alpha)
        if analyses:
            kinds = [r.kind if r else "failed/not analysed" for r in analyses["reports"]]
            summary["batch"]["kinds"] = {k: kinds.count(k) for k in sorted(set(kinds))}
    return summary
