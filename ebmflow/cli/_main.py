"""The ``ebmflow`` command line: parses arguments, calls the public API, prints and writes files.

    ebmflow demo --out DIR          two embedded experiments: an expressive and an under-expressive RBM
    ebmflow run EXPERIMENT.toml --out DIR [--resume | --overwrite]
    ebmflow plot DIR                regenerate every figure from DIR/results.npz
    ebmflow couplings MODEL.h5 --out DIR    effective couplings of an RBM trained elsewhere

Exit codes are listed in `main`.
"""

import argparse
import importlib.resources
import os
import sys
import tomllib
from pathlib import Path

import jax
from equinox import _errors as equinox_errors

import ebmflow as ef
from ebmflow.experiments import (
    ConfigError,
    CouplingsJob,
    Outcome,
    load_experiment,
    parse_experiment,
    run_couplings,
    run_experiment,
)
from ebmflow.io import load, plot_all

OK, BAD_INPUT, FILE_SYSTEM, MEMBER_FAILED, INTERRUPTED = 0, 1, 2, 3, 130  # exit codes (see `main`)
# The demo: one teacher (fields, pairs, triplets on 5 spins), learned by an RBM that can represent it and by one
# that cannot; each experiment is written into its own subfolder of --out.
DEMO = (("expressive", "demo_expressive.toml"), ("under_expressive", "demo_under_expressive.toml"))
# Every compiled program is cached: the demo's ~200 take 1.4 MiB, and the small ones add up to a fifth of its
# compile time.
CACHE_MIN_COMPILE_S = 0.0


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors exiting with code 1 (bad input) rather than argparse's 2 (here: file system)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(BAD_INPUT, f"{self.prog}: error: {message}\n")


def _folder(text: str) -> str:
    """An ``--out`` value: a non-empty path (an empty one would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"the output folder must be a path (created if missing); got {text!r}")
    return text


def _formats(args) -> tuple[str, ...]:
    return ("png", "pdf") if args.pdf else ("png",)


def _nats(kl: float) -> str:
    """A KL for people: values within float64 rounding of 0 (they can come out negative) read as 0."""
    return f"0 within rounding ({kl:.0e} nats)" if abs(kl) < 1e-13 else f"{kl:.3e} nats"


def _print_summary(summary: dict, out: Path, figures: list[Path]) -> None:
    print(f"\n{summary['name']}: {summary['status']}, {summary['members_done']} of {summary['members']} runs")
    if not summary["members_done"]:
        print(f"  no run finished, so there is nothing to plot; results {out / 'results.npz'}")
        return
    print(f"  run 0: {summary['result']}; final KL = {_nats(summary['final_kl'])}")
    if summary.get("refinement"):
        print(f"  fixed-point refinement of the endpoint: {summary['refinement']}")
    if summary.get("kind"):
        print(f"  endpoint: {summary['kind']}; Hessian {summary['n_stable']} stable, {summary['n_neutral']} neutral, "
              f"{summary['n_unstable']} unstable; rank G = {summary['rank']}")
    times = ", ".join(f"τ_{k} = {t:.3g}" for k, t in summary["learning_times"].items() if t == t and t != float("inf"))
    print(f"  learning times (Δ_k <= {summary['alpha']}): {times or 'none reached'}")
    if "batch" in summary:
        b = summary["batch"]
        median = _nats(b["final_kl"].get("median", float("nan")))
        print(f"  batch: {b['ok']}/{b['members']} ok, final KL median {median}, endpoints {b.get('kinds', {})}")
    print(f"  found: {summary['findings']}")
    print(f"  wall time {summary['wall_time_s']:.1f} s; results {out / 'results.npz'}, summary {out / 'summary.json'}")
    print("  figures: " + (", ".join(str(p) for p in figures) if figures else
                           f"not drawn (interrupted); `ebmflow plot {out}` draws them"))


def _execute(experiment, args, out: Path) -> Outcome:
    """Run one experiment into ``out``, print its summary (unless --quiet) and any failed members (on stderr)."""
    log = (lambda *a, **k: None) if args.quiet else print
    outcome = run_experiment(experiment, out, progress=not args.quiet and sys.stderr.isatty(), log=log,
                             formats=_formats(args), resume=args.resume, overwrite=args.overwrite)
    if not args.quiet:
        _print_summary(outcome.summary, out, outcome.figures)
    if outcome.failed:
        print(f"ebmflow: {outcome.failed} of {outcome.summary['members_done']} runs failed "
              f"({', '.join(outcome.summary['failures'])}); their result codes and messages are in "
              f"{outcome.results_path}", file=sys.stderr)
    return outcome


def _exit_code(outcomes: list[Outcome]) -> int:
    """130 if a run was interrupted, else 3 if a member failed, else 0."""
    if not all(o.complete for o in outcomes):
        return INTERRUPTED
    return MEMBER_FAILED if any(o.failed for o in outcomes) else OK


def _demo(args) -> int:
    outcomes = []
    for folder, name in DEMO:
        text = importlib.resources.files("ebmflow.experiments").joinpath(name).read_text()
        outcomes.append(_execute(parse_experiment(tomllib.loads(text)), args, Path(args.out) / folder))
        if not outcomes[-1].complete:  # interrupted: the next experiment is not started
            break
    if not args.quiet:
        print("\nWhat the demo found (one teacher with fields, pairs and triplets on 5 spins):")
        for outcome in outcomes:
            print(f"  {outcome.summary['name']}: {outcome.summary.get('findings', 'no run finished')}")
    return _exit_code(outcomes)


def _run(args) -> int:
    return _exit_code([_execute(load_experiment(args.experiment), args, Path(args.out))])


def _plot(args) -> int:
    figures = plot_all(load(args.results), Path(args.results) if Path(args.results).is_dir() else
                       Path(args.results).parent, formats=_formats(args))
    print("\n".join(str(p) for p in figures))
    return OK


def _site_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _triplets(text: str) -> tuple[tuple[int, int, int], ...]:
    """``"0,1,2;3,4,5"`` (0-based sites) -> ((0, 1, 2), (3, 4, 5))."""
    triplets = tuple(_site_list(t) for t in text.split(";") if t.strip())
    if any(len(t) != 3 for t in triplets):
        raise argparse.ArgumentTypeError(f"triplets are written 'i,j,k;i,j,k' (0-based sites); got {text!r}")
    return triplets


def _gap(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gap takes a colour number or 'none'; got {text!r}") from None


def _couplings(args) -> int:
    job = CouplingsJob(
        model=args.model, orders=args.orders, triplets=args.triplets, update=args.update, layout=args.layout,
        method=args.method, tau=args.tau, nodes=args.nodes, gap=args.gap,
        contacts=args.contacts, cutoff=args.cutoff, index_base=args.index_base, min_separation=args.min_separation,
        dtype=args.dtype,
    )
    log = (lambda *a, **k: None) if args.quiet else print
    summary = run_couplings(job, args.out, progress=not args.quiet and sys.stderr.isatty(), log=log,
                            formats=_formats(args))
    if not args.quiet:
        print(f"\n{summary['model_type']} with n = {summary['n']} sites, q = {summary['q']}, "
              f"{summary['n_hidden']} hidden units: method {summary['method']}"
              + (f", {summary['quadrature_nodes']} quadrature nodes" if "quadrature_nodes" in summary else ""))
        for i, j, score in summary.get("top_pairs", [])[:5]:
            print(f"  pair ({i}, {j}): APC score {score:.4g}")
        if "ppv" in summary:
            print("  PPV: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["ppv"].items()))
        print(f"  wall time {summary['wall_time_s']:.1f} s; {Path(args.out) / 'couplings.npz'}, "
              f"{Path(args.out) / 'summary.json'}")
        print("  figures: " + ", ".join(summary["figures"]))
    return OK


def _devices(cmd) -> None:
    cmd.add_argument("--devices", type=int, help="host CPU devices to use (default: one per core); sums and batches "
                     "are split over them")
    cmd.add_argument("--coordinator", help="HOST:PORT of process 0, to run as one of several processes")
    cmd.add_argument("--num-processes", type=int, default=1, help="processes in the run (with --coordinator)")
    cmd.add_argument("--process-id", type=int, default=0, help="this process's number, 0 .. num-processes - 1")


def _compilation_cache(args) -> Path | None:
    """Keep compiled programs in ``$XDG_CACHE_HOME/ebmflow/jax`` (``~/.cache/ebmflow/jax``); returns the folder.

    JAX's persistent compilation cache: compiling, not integrating, dominates small runs, and a
    later run of the same shapes reads the programs back. Off with ``--no-cache`` or
    ``EBMFLOW_COMPILATION_CACHE=0``; a cache folder already set for JAX (``JAX_COMPILATION_CACHE_DIR``)
    is kept. A folder that cannot be created turns the cache off with a warning, not the run.

    JAX does not cache a program that holds host callbacks, and equinox's runtime checks (those
    diffrax makes inside every flow, ``eqx.error_if``) are host callbacks. With the cache on they
    return NaN instead (equinox's ``EQX_ON_ERROR=nan``, unless that variable is set): the command
    line validates its inputs before anything runs, and a NaN ends a member with a result code.
    """
    off = os.environ.get("EBMFLOW_COMPILATION_CACHE", "1").strip().lower() in ("0", "false", "no", "off")
    if getattr(args, "no_cache", True) or off or jax.config.jax_compilation_cache_dir:
        return None
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ebmflow" / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"ebmflow: warning: compilation cache off: cannot create {folder}: {err.strerror}", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)
    if "EQX_ON_ERROR" not in os.environ:  # equinox reads the variable once, at import
        equinox_errors.EQX_ON_ERROR = "nan"
    return folder


def _start_devices(args) -> None:
    """Set up JAX's devices before the first computation (one CPU device per core unless --devices says)."""
    if getattr(args, "coordinator", None):
        ef.initialize_distributed(args.coordinator, args.num_processes, args.process_id, cpu_devices=args.devices)
    elif hasattr(args, "devices"):
        ef.use_cpu_devices(args.devices)


def _computing(cmd) -> None:
    """Options of the commands that compute: devices and the compilation cache."""
    _devices(cmd)
    cmd.add_argument("--no-cache", action="store_true", help="do not keep compiled programs in ~/.cache/ebmflow/jax "
                     "(also: EBMFLOW_COMPILATION_CACHE=0)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ebmflow", description="Exact learning dynamics of energy-based models.")
    parser.add_argument("--version", action="version", version=f"ebmflow {ef.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, run, help_ in [("demo", _demo, "run the embedded demo: an expressive and an under-expressive RBM"),
                             ("run", _run, "run an experiment file (TOML)")]:
        cmd = commands.add_parser(name, help=help_)
        if name == "run":
            cmd.add_argument("experiment", help="experiment file (.toml); see examples/")
        cmd.add_argument("--out", required=True, type=_folder, help="output folder (created)")
        again = cmd.add_mutually_exclusive_group()
        again.add_argument("--resume", action="store_true", help="continue an unfinished run of the same experiment "
                           "in --out from its finished members")
        again.add_argument("--overwrite", action="store_true", help="replace the results already in --out (another "
                           "experiment's, or an unfinished run)")
        cmd.add_argument("--quiet", action="store_true", help="print nothing, no progress bars")
        cmd.add_argument("--pdf", action="store_true", help="also write PDF figures")
        _computing(cmd)
        cmd.set_defaults(run=run)
    plot = commands.add_parser("plot", help="regenerate the figures from a results folder or file")
    plot.add_argument("results", help="a folder holding results.npz, or the file")
    plot.add_argument("--pdf", action="store_true")
    plot.set_defaults(run=_plot)
    cp = commands.add_parser("couplings", help="effective couplings of an RBM read from an HDF5 file")
    cp.add_argument("model", help="an HDF5 model file (rbms package, or the papers' layouts)")
    cp.add_argument("--out", required=True, type=_folder, help="output folder (created)")
    cp.add_argument("--orders", type=_site_list, default=(1, 2), help="orders to compute: 1, 2, 3 (default 1,2)")
    cp.add_argument("--triplets", type=_triplets, default=(), help="order-3 site triplets, 'i,j,k;i,j,k' (0-based)")
    cp.add_argument("--update", type=int, help="the checkpoint to read (default: the last)")
    cp.add_argument("--layout", choices=("auto", "rbms", "couplings_inference"), default="auto",
                    help="orientation of a Potts file without model_type")
    cp.add_argument("--method", choices=("gauss", "mixture", "exact"), default="gauss")
    cp.add_argument("--tau", type=float, default=2.5, help="outlier z-score threshold of --method mixture")
    cp.add_argument("--nodes", type=int, help="quadrature nodes (default: fitted to the model)")
    cp.add_argument("--gap", type=_gap, default=0, help="colour left out of the contact scores (default 0), or 'none'")
    cp.add_argument("--contacts", help="contact map: .npy distances/booleans (n, n), or text 'i j [distance]'")
    cp.add_argument("--cutoff", type=float, default=7.5, help="contact distance cutoff (default 7.5)")
    cp.add_argument("--index-base", type=int, default=1, help="site numbering of a text contact file (default 1)")
    cp.add_argument("--min-separation", type=int, default=6, help="rank pairs with |i - j| >= this (default 6)")
    cp.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    cp.add_argument("--quiet", action="store_true", help="print nothing, no progress bars")
    cp.add_argument("--pdf", action="store_true", help="also write PDF figures")
    _computing(cp)
    cp.set_defaults(run=_couplings)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit code. Errors are one line on stderr, ``ebmflow: error: ...``.

    Exit codes:

    - 0: success;
    - 1: bad input: usage, an experiment or samples file, an argument (the message names it and
      what is accepted);
    - 2: a file-system error or an output folder that cannot be used: not creatable or writable,
      full, a file, locked by another run, or holding results that this run must not replace (the
      message names the path and the cause; finished results stay readable);
    - 3: some member of a batch failed (max_steps, NaN, ...): everything is written, and each
      member's result code says what happened;
    - 130: interrupted (Ctrl-C): what was finished is written, with status ``"interrupted"``.
    """
    args = _parser().parse_args(argv)
    try:
        _compilation_cache(args)
        _start_devices(args)
        return args.run(args)
    except (ConfigError, ValueError) as err:
        print(f"ebmflow: error: {err}", file=sys.stderr)
        return BAD_INPUT
    except OSError as err:  # an OutputError reads "cannot write PATH: CAUSE"
        print(f"ebmflow: error: {err}", file=sys.stderr)
        return FILE_SYSTEM
    except KeyboardInterrupt:  # outside an experiment's own handling (which writes what was finished)
        print("ebmflow: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
