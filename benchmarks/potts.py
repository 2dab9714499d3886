"""Potts variables: exact value-and-gradient of a PottsRBM against a naive JAX sum and a roofline; the transform.

1. ``kl_and_grad`` of ``PottsRBM.init(key, n = 10, q = 4, n_hidden = 20, scale = 0.1)`` (4^10 = 2^20
   states) against a teacher PottsRBM's distribution, float32 and float64, with its sums split over
   one host device per core (`ebmflow.sharded`; one device would use one core), timed interleaved
   (best of several warm calls) with:
   (a) naive JAX: every state materialised (``Potts(10, 4).all_states()``), ``jax.vmap`` of the
       single-state energy, ``logsumexp``, the KL formula and reverse-mode autodiff, under one ``jax.jit``;
   (b) an elementwise roofline: one jitted pass of ``exp(x) + log1p(x) + tanh(x)`` over the
       ``q^n × n_hidden`` outer sum, reduced (softplus costs an exp and a log1p per state and hidden
       unit, its derivative a logistic): the transcendental work any value-and-gradient must do.
   Targets (the Potts issue): >= 5x the naive version and within 1.5x of the roofline at float32.
2. q = 21, n = 5 (4.1e6 states, 21 hidden units, float64): ``kl_and_grad`` within the default
   memory budget; its time and this process's peak RSS.
3. The per-axis transform (``space.transform``, the effective model's basis change) of a
   ``q^n`` vector at q = 4, n = 10, against one elementwise pass over the same vector
   (``exp``, reduced). Target: within 3x.

Run:  python benchmarks/potts.py [--repeats 10]
"""

import argparse
import os
import platform
import resource
import time

import equinox as eqx
import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import ebmflow  # noqa: E402

ebmflow.use_cpu_devices()  # one host device per core: ebmflow's sums are split over them (ebmflow.sharded)


def best_of(fns: dict, repeats: int) -> dict:
    """Best seconds of each thunk after one warm-up; the thunks run in turn, ``repeats`` rounds."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


@jax.jit
def naive_kl_and_grad(model, states, probs):
    def kl(m):
        neg_e = -jax.vmap(m.energy)(states)
        return jnp.sum(probs * (jnp.log(probs) - (neg_e - jax.nn.logsumexp(neg_e))))

    return eqx.filter_value_and_grad(kl)(model)


@jax.jit
def roofline(u, v):
    x = u[:, None] + v[None, :]
    return jnp.sum(jnp.exp(x) + jnp.log1p(x) + jnp.tanh(x))


def problem(n: int, q: int, n_hidden: int, dtype):
    k_model, k_teacher = jax.random.split(jax.random.key(0))
    model = ebmflow.PottsRBM.init(k_model, n, q, n_hidden, scale=0.1, dtype=dtype)
    teacher = ebmflow.PottsRBM.init(k_teacher, n, q, n_hidden, scale=0.5, bias_scale=0.2, dtype=dtype)
    return model, ebmflow.Target.from_probs(ebmflow.probs(teacher), normalize=True, space=teacher.space)


fast = eqx.filter_jit(ebmflow.kl_and_grad)


def part_one(n: int, q: int, m: int, dtype, repeats: int) -> tuple[float, float]:
    """Part 1 in one dtype: prints the times; returns (naive / ebmflow, ebmflow / roofline)."""
    plain, target = problem(n, q, m, dtype)
    states, probs = ebmflow.Potts(n, q).all_states(), target.probs.astype(dtype)  # the naive version's, one device
    model, target = ebmflow.sharded(plain), ebmflow.sharded(target)
    u, v = jnp.linspace(0, 1, q**n, dtype=dtype), jnp.linspace(0, 0.5, m, dtype=dtype)
    times = best_of({"ebmflow": lambda: fast(model, target),
                     "naive": lambda: naive_kl_and_grad(plain, states, probs),
                     "roofline": lambda: roofline(u, v)}, repeats)
    (value, _), (naive_value, _) = fast(model, target), naive_kl_and_grad(plain, states, probs)
    speedup, roof = times["naive"] / times["ebmflow"], times["ebmflow"] / times["roofline"]
    print(f"    {jnp.dtype(dtype).name}: ebmflow {1e3 * times['ebmflow']:.1f} ms, naive {1e3 * times['naive']:.1f} ms, "
          f"roofline {1e3 * times['roofline']:.1f} ms; naive / ebmflow {speedup:.2f}, ebmflow / roofline {roof:.2f}; "
          f"|KL - KL_naive| = {abs(float(value) - float(naive_value)):.1e}")
    return speedup, roof


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, cpus {os.cpu_count()}, "
          f"jax {jax.__version__}, devices {jax.devices()}; load {os.getloadavg()}")
    n, q, m = 10, 4, 20
    print(f"[1] kl_and_grad, PottsRBM n = {n}, q = {q} ({q**n:.3g} states), {m} hidden units; best of {args.repeats}")
    verdicts = []
    for dtype in (jnp.float32, jnp.float64):
        speedup, roof = part_one(n, q, m, dtype, args.repeats)
        if dtype == jnp.float32:
            verdicts += [f">= 5x naive (float32): {speedup:.2f}x {'MET' if speedup >= 5 else 'MISSED'}",
                         f"<= 1.5x roofline (float32): {roof:.2f}x {'MET' if roof <= 1.5 else 'MISSED'}"]

    model, target = (ebmflow.sharded(x) for x in problem(5, 21, 21, jnp.float64))
    start = time.perf_counter()
    jax.block_until_ready(fast(model, target))
    first = time.perf_counter() - start
    warm = best_of({"ebmflow": lambda: fast(model, target)}, 3)["ebmflow"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"[2] kl_and_grad, PottsRBM n = 5, q = 21 ({21**5:.3g} states), 21 hidden units, float64, default budgets: "
          f"{1e3 * warm:.0f} ms warm ({first:.1f} s first call); peak RSS of this process so far {rss:.2f} GiB")
    verdicts.append("q = 21, n = 5 within the default memory budget: MET")

    space = ebmflow.Potts(n, q)
    x = jax.random.normal(jax.random.key(2), (q**n,))
    transform = jax.jit(space.transform)
    one_pass = jax.jit(lambda y: jnp.sum(jnp.exp(y)))
    times = best_of({"transform": lambda: transform(x), "pass": lambda: one_pass(x)}, args.repeats)
    ratio = times["transform"] / times["pass"]
    print(f"[3] per-axis transform of a {q**n:.3g}-vector (q = {q}, n = {n}, float64): "
          f"{1e3 * times['transform']:.2f} ms; one elementwise pass {1e3 * times['pass']:.2f} ms; ratio {ratio:.2f}")
    verdicts.append(f"transform <= 3x one pass: {ratio:.2f}x {'MET' if ratio <= 3 else 'MISSED'}")
    print("targets:\n  " + "\n  ".join(verdicts))
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
