"""Walsh–Hadamard transform: ebmflow's `fwht` against the textbook per-bit butterfly and a memory roofline.

For each ``n`` this times, in one process and interleaved repeat by repeat:

(a) ``ebmflow.fwht``: four bits per pass (a ``(16, 16)`` Kronecker power of the 2×2 butterfly
    applied as a matrix product, the bits rotated to the top), one traced loop body;
(b) the textbook butterfly: ``n`` unrolled passes, one bit each (ebmflow's transform before
    commit abfea9f), in JAX under one ``jax.jit``;
(c) a roofline: ``ceil(n / 4)`` elementwise passes over the ``2**n`` vector (read, scale, write),
    the memory traffic of (a) with no arithmetic to speak of.

It also prints the compile time and the size of the compiled program (StableHLO characters) of
(a) and (b): the flow records four transforms per save time, so the transform's program size
is part of every flow's compile time. Both transforms are checked to agree first.

Run:  python benchmarks/walsh.py [--sizes 8,14,20,22] [--dtype float64] [--repeats 7]
"""

import argparse
import importlib.metadata
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import ebmflow


def textbook_fwht(x):
    """One pass per bit, unrolled: ``H = ⊗ [[1, 1], [1, -1]]`` applied bit by bit."""
    n = x.shape[-1].bit_length() - 1
    for i in range(n):
        y = x.reshape((2 ** (n - 1 - i), 2, 2**i))
        a, b = y[:, 0, :], y[:, 1, :]
        x = jnp.stack([a + b, a - b], axis=1)
    return x.reshape(2**n)


def roofline(x):
    for _ in range(-(-(x.shape[-1].bit_length() - 1) // 4)):
        x = jax.lax.optimization_barrier(x * 1.5)  # the barrier keeps XLA from fusing the passes
    return x


def compiled(fn, x):
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(x)
    program = lowered.compile()
    return program, time.perf_counter() - start, len(lowered.as_text())


def bench(n: int, dtype, repeats: int) -> None:
    x = jax.random.normal(jax.random.key(n), (2**n,), dtype)
    fns = {name: compiled(fn, x) for name, fn in
           (("ebmflow", ebmflow.fwht), ("textbook", textbook_fwht), ("roofline", roofline))}
    scale = float(jnp.max(jnp.abs(fns["textbook"][0](x))))
    gap = float(jnp.max(jnp.abs(fns["ebmflow"][0](x) - fns["textbook"][0](x)))) / scale
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, (program, _, _) in fns.items():
            jax.block_until_ready(program(x))
            start = time.perf_counter()
            jax.block_until_ready(program(x))
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    print(f"n = {n:2d}  min / median ms: " + ", ".join(
        f"{name} {best[name] * 1e3:.3f} / {statistics.median(times[name]) * 1e3:.3f}" for name in fns))
    print(f"        textbook / ebmflow {best['textbook'] / best['ebmflow']:.2f}x, "
          f"ebmflow / roofline {best['ebmflow'] / best['roofline']:.2f}x; max relative difference {gap:.1e}")
    print(f"        compile (s) / program (k chars): ebmflow {fns['ebmflow'][1]:.2f} / {fns['ebmflow'][2] / 1e3:.1f}, "
          f"textbook {fns['textbook'][1]:.2f} / {fns['textbook'][2] / 1e3:.1f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,14,20,22", help="comma-separated n (default 8,14,20,22)")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats, interleaved (default 7)")
    args = parser.parse_args(argv)
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("jax", "jaxlib", "ebmflow"))
    print(f"machine   {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"jax.devices() = {jax.devices()}; {versions}; dtype {args.dtype}")
    for n in (int(s) for s in args.sizes.split(",")):
        bench(n, jnp.dtype(args.dtype), args.repeats)


if __name__ == "__main__":
    main()
