"""Eager calls against jitted calls: what a notebook user pays for calling ebmflow one function at a time.

For each public exact and effective-model function, at ``n`` = 12 and 20 (an RBM with ``n``
spin hidden units, float64 unless ``--dtype``), this times a warm eager call
(``ebmflow.log_partition(model)``, the way a notebook calls it) against the same call
wrapped in the caller's own ``eqx.filter_jit``, interleaved repeat by repeat in one
process, and prints ``eager / jitted`` (1.0 means no overhead). Eager calls validate their
inputs and dispatch one compiled function; the ratio measures that overhead.

Run:  python benchmarks/eager.py [--sizes 12,20] [--dtype float64] [--repeats 5]
"""

import argparse
import os
import platform

import equinox as eqx
import jax
import numpy as np
from exact import time_interleaved

import ebmflow

TARGET = 1.5  # the target for the ratio at n = 20


def calls(n: int, dtype) -> dict:
    model = ebmflow.RBM.init(jax.random.key(0), n, n_hidden=n, scale=0.1, dtype=dtype)
    p = np.random.default_rng(0).gamma(2.0, size=2**n).astype(dtype)
    target = ebmflow.Target.from_probs(p / p.sum(dtype=np.float64), normalize=True)
    fns = {
        "neg_energies": lambda m, t: ebmflow.neg_energies(m),
        "log_partition": lambda m, t: ebmflow.log_partition(m),
        "log_probs": lambda m, t: ebmflow.log_probs(m),
        "probs": lambda m, t: ebmflow.probs(m),
        "nll": lambda m, t: ebmflow.nll(m, t),
        "kl": lambda m, t: ebmflow.kl(m, t),
        "kl_and_grad": lambda m, t: ebmflow.kl_and_grad(m, t),
        "couplings(model)": lambda m, t: ebmflow.couplings(m),
        "couplings(target)": lambda m, t: ebmflow.couplings(t),
        "moments(model)": lambda m, t: ebmflow.moments(m),
        "moments(target)": lambda m, t: ebmflow.moments(t),
    }
    if n <= 12:  # dense (2**n, P) and (2**n, 2**n) objects
        fns["coupling_jacobian"] = lambda m, t: ebmflow.coupling_jacobian(m)
        fns["tangent_kernel"] = lambda m, t: ebmflow.tangent_kernel(m)
    return {name: (fn, model, target) for name, fn in fns.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="12,20")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, cpus {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.2f}, jax {jax.__version__}, {jax.devices()}, dtype {dtype.name}")
    print(f"{'n':>3} {'function':<20} {'eager ms':>10} {'jitted ms':>10} {'eager/jitted':>13}")
    for n in (int(s) for s in args.sizes.split(",")):
        ratios = []
        for name, (fn, model, target) in calls(n, dtype).items():
            jitted = eqx.filter_jit(fn)
            times, _ = time_interleaved(
                {"eager": lambda fn=fn, m=model, t=target: fn(m, t),
                 "jitted": lambda j=jitted, m=model, t=target: j(m, t)},
                args.repeats,
            )
            ratio = times["eager"][0] / times["jitted"][0]
            ratios.append(ratio)
            print(f"{n:>3} {name:<20} {1e3 * times['eager'][0]:>10.3f} {1e3 * times['jitted'][0]:>10.3f} "
                  f"{ratio:>13.2f}")
        verdict = "" if n != 20 else f"  target <= {TARGET}: {'MET' if max(ratios) <= TARGET else 'MISSED'}"
        print(f"n = {n}: worst eager/jitted {max(ratios):.2f}, median {np.median(ratios):.2f}{verdict}")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
