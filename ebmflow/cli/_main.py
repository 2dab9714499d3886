"""The ``ebmflow`` command line: parses arguments, calls the public API, prints and writes files."""

import argparse
import sys

import jax
import numpy as np

import ebmflow as ef


def _demo(args) -> int:
    n, m = args.n, args.hidden
    teacher = ef.targets.random_ising(jax.random.key(args.seed), n, {1: 0.2, 2: 0.3 / n**0.5, 3: 0.5 / n})
    target = ef.Target.from_model(teacher)
    model = ef.RBM.init(jax.random.key(args.seed + 1), n, m, scale=args.scale)
    j_model, j_target = ef.couplings(model), ef.couplings(target)
    norms_model, norms_target = ef.order_norms(j_model), ef.order_norms(j_target)
    errors = ef.order_norms(j_model - j_target)
    print(f"RBM (n={n}, {m} spin hidden units, weights ~ N(0, {args.scale}²)) vs a random generalised Ising")
    print(f"teacher with fields, pairs and triplets (seed {args.seed}); exact over all 2**{n} states, float64")
    print(f"KL(teacher || RBM) = {float(ef.kl(model, target)):.6g} nats\n")
    print(f"{'order':>5} {'count':>6} {'||J_k|| RBM':>12} {'||J*_k|| teacher':>17} {'||J_k - J*_k||':>15}")
    for k in range(1, n + 1):
        count = len(ef.subsets_of_order(n, k))
        print(f"{k:>5} {count:>6} {norms_model[k]:>12.4e} {norms_target[k]:>17.4e} {errors[k]:>15.4e}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebmflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ebmflow {ef.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="exact KL and effective couplings of a default RBM against a teacher")
    demo.add_argument("--n", type=int, default=10, help="visible spins (default 10)")
    demo.add_argument("--hidden", type=int, default=10, help="hidden units (default 10)")
    demo.add_argument("--scale", type=float, default=0.3, help="initial weight std (default 0.3)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    np.set_printoptions(precision=4)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
