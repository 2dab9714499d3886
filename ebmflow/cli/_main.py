"""The ``ebmflow`` command line: parses arguments, calls the public API, prints and writes files.

    ebmflow demo --out DIR          the embedded default experiment
    ebmflow run EXPERIMENT.toml --out DIR
    ebmflow plot DIR                regenerate every figure from DIR/results.npz
    ebmflow couplings MODEL.h5 --out DIR    effective couplings of an RBM trained elsewhere
"""

import argparse
import importlib.resources
import sys
import tomllib
from pathlib import Path

import ebmflow as ef
from ebmflow.experiments import (
    ConfigError,
    CouplingsJob,
    load_experiment,
    parse_experiment,
    run_couplings,
    run_experiment,
)
from ebmflow.io import load, plot_all


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
    print(f"  wall time {summary['wall_time_s']:.1f} s; results {out / 'results.npz'}, summary {out / 'summary.json'}")
    print("  figures: " + ", ".join(str(p) for p in figures))


def _execute(experiment, args) -> int:
    out = Path(args.out)
    log = (lambda *a, **k: None) if args.quiet else print
    progress = not args.quiet and sys.stderr.isatty()
    outcome = run_experiment(experiment, out, progress=progress, log=log)
    figures = []
    if outcome.summary["members_done"]:  # interrupted before the first group finished: no figures
        figures = plot_all(load(outcome.results_path), out, formats=("png", "pdf") if args.pdf else ("png",))
    if not args.quiet:
        _print_summary(outcome.summary, out, figures)
    return 0 if outcome.complete else 130


def _demo(args) -> int:
    text = importlib.resources.files("ebmflow.experiments").joinpath("demo.toml").read_text()
    return _execute(parse_experiment(tomllib.loads(text)), args)


def _run(args) -> int:
    return _execute(load_experiment(args.experiment), args)


def _plot(args) -> int:
    figures = plot_all(load(args.results), Path(args.results) if Path(args.results).is_dir() else
                       Path(args.results).parent, formats=("png", "pdf") if args.pdf else ("png",))
    print("\n".join(str(p) for p in figures))
    return 0


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
                            formats=("png", "pdf") if args.pdf else ("png",))
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
    return 0


def _devices(cmd) -> None:
    cmd.add_argument("--devices", type=int, help="host CPU devices to use (default: one per core); sums and batches "
                     "are split over them")
    cmd.add_argument("--coordinator", help="HOST:PORT of process 0, to run as one of several processes")
    cmd.add_argument("--num-processes", type=int, default=1, help="processes in the run (with --coordinator)")
    cmd.add_argument("--process-id", type=int, default=0, help="this process's number, 0 .. num-processes - 1")


def _start_devices(args) -> None:
    """Set up JAX's devices before the first computation (one CPU device per core unless --devices says)."""
    if getattr(args, "coordinator", None):
        ef.initialize_distributed(args.coordinator, args.num_processes, args.process_id, cpu_devices=args.devices)
    elif hasattr(args, "devices"):
        ef.use_cpu_devices(args.devices)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebmflow", description="Exact learning dynamics of energy-based models.")
    parser.add_argument("--version", action="version", version=f"ebmflow {ef.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, run, help_ in [("demo", _demo, "run the embedded default experiment"),
                             ("run", _run, "run an experiment file (TOML)")]:
        cmd = commands.add_parser(name, help=help_)
        if name == "run":
            cmd.add_argument("experiment", help="experiment file (.toml); see examples/")
        cmd.add_argument("--out", required=True, help="output folder (created)")
        cmd.add_argument("--quiet", action="store_true", help="print nothing, no progress bars")
        cmd.add_argument("--pdf", action="store_true", help="also write PDF figures")
        _devices(cmd)
        cmd.set_defaults(run=run)
    plot = commands.add_parser("plot", help="regenerate the figures from a results folder or file")
    plot.add_argument("results", help="a folder holding results.npz, or the file")
    plot.add_argument("--pdf", action="store_true")
    plot.set_defaults(run=_plot)
    cp = commands.add_parser("couplings", help="effective couplings of an RBM read from an HDF5 file")
    cp.add_argument("model", help="an HDF5 model file (rbms package, or the papers' layouts)")
    cp.add_argument("--out", required=True, help="output folder (created)")
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
    _devices(cp)
    cp.set_defaults(run=_couplings)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 ok, 1 bad input, 130 interrupted)."""
    args = _parser().parse_args(argv)
    try:
        _start_devices(args)
        return args.run(args)
    except (ConfigError, ValueError) as err:
        print(f"ebmflow: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
