"""Exact KL value-and-gradient of an RBM: ebmflow against a naive JAX sum, the `rbms` package and a roofline.

For each size ``n`` (``n`` visible spins, ``n`` spin hidden units) and dtype this times
``eqx.filter_jit(ebmflow.kl_and_grad)`` of ``RBM.init(key, n, n_hidden=n, scale=0.1)``
against a teacher RBM's distribution, and, in the same process and interleaved repeat by
repeat (so that drifting load on a shared machine hits all of them alike):

(a) naive JAX: all ``2**n`` states materialised (`ebmflow.all_states`), ``jax.vmap(model.energy)``,
    ``jax.nn.logsumexp``, the KL formula and reverse-mode autodiff, all under one ``jax.jit``;
(b) the `rbms` package's exact log-partition function (PyTorch, value only, so it does less
    work than (a) and ebmflow), on the same model mapped to its Bernoulli-Bernoulli convention;
(c) an elementwise roofline: one jitted pass of ``exp(x) + log1p(x) + tanh(x)`` over a
    ``2**n × n_hidden`` array reduced to a scalar. ``ln 2cosh`` costs an exp and a log1p per
    (state, hidden unit) and its derivative a tanh, so this is the transcendental work that any
    value-and-gradient must do. The array is built inside the jit as an outer sum of two vectors
    (as ebmflow builds its blocks), so the pass measures arithmetic, not memory traffic.

Ratios are printed both ways and labelled. ``--memory`` runs n = 26 (26 hidden units, float32)
in a subprocess and reports its peak resident memory and time.

Run:  python benchmarks/exact.py [--sizes 12,16,20,22] [--dtypes float32,float64] [--repeats 3]
                                [--chunk-size N] [--memory]
"""

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import ebmflow

GiB = 2**30
NAIVE_LIMIT = 6 * GiB  # skip a baseline that would not fit comfortably in memory
TARGET_SPEEDUP = 5.0  # issue's targets at n = 20, float32
TARGET_ROOFLINE = 2.0
TARGET_MEMORY = 4 * GiB

torch = BBRBM = compute_partition_function_rbm = None
TORCH_THREADS = None
RBMS_SKIPPED = "not loaded"


def load_rbms() -> None:
    """Import baseline (b), which is optional; on failure ``RBMS_SKIPPED`` says why.

    Not imported at module level, so that the memory check's subprocess does not carry torch.
    """
    global torch, BBRBM, compute_partition_function_rbm, TORCH_THREADS, RBMS_SKIPPED
    try:
        import torch
        from rbms.bernoulli_bernoulli.classes import BBRBM
        from rbms.partition_function.exact import compute_partition_function_rbm
    except ImportError as error:
        RBMS_SKIPPED = f"rbms/torch not importable ({error}); install with `pip install torch==2.13.0 rbms`"
        return
    TORCH_THREADS, RBMS_SKIPPED = torch.get_num_threads(), None


# ---------------------------------------------------------------- problems


def make_problem(n: int, dtype):
    """Student RBM (weights N(0, 0.1²)) and the target of a teacher RBM, both in ``dtype``."""
    k_model, k_teacher = jax.random.split(jax.random.PRNGKey(0))
    model = ebmflow.RBM.init(k_model, n, n_hidden=n, scale=0.1, dtype=dtype)
    teacher = ebmflow.RBM.init(k_teacher, n, n_hidden=n, scale=0.5, bias_scale=0.2, dtype=dtype)
    # Not Target.from_model: in float32 at n >= 20 its probabilities sum to 1 only within ~2e-6,
    # which Target's 1e-6 check refuses; renormalising the same probabilities passes.
    return model, ebmflow.Target.from_probs(ebmflow.probs(teacher), normalize=True)


ebmflow_kl_and_grad = eqx.filter_jit(ebmflow.kl_and_grad)


@jax.jit  # every leaf of an RBM is an array (its ints are static fields), so plain jit applies
def naive_kl_and_grad(model, states, probs):
    """Baseline (a): every state's energy at once, then ``KL = Σ p (ln p - ln p_θ)``."""

    def kl(m):
        neg_e = -jax.vmap(m.energy)(states)
        log_p_model = neg_e - jax.nn.logsumexp(neg_e)
        return jnp.sum(probs * (jnp.log(probs) - log_p_model))

    return eqx.filter_value_and_grad(kl)(model)


@jax.jit
def roofline(u, v):
    """Baseline (c): exp, log1p and tanh over the ``len(u) × len(v)`` outer sum, reduced."""
    x = u[:, None] + v[None, :]
    return jnp.sum(jnp.exp(x) + jnp.log1p(x) + jnp.tanh(x))


def naive_bytes(model, states, probs) -> int:
    """Arguments plus XLA's temporaries for baseline (a), from the compiled program."""
    compiled = naive_kl_and_grad.lower(model, states, probs).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    return temp + states.nbytes + probs.nbytes


def to_rbms(model):
    """The same distribution as a `rbms` Bernoulli-Bernoulli RBM, and ``C`` with ``ln Z = ln Z_rbms + C``.

    ebmflow's spin RBM is the marginal of ``-E(s, σ) = a·s + σ·(b + W s)``, ``σ ∈ {±1}^m``
    (summing σ gives ``ln 2cosh``). With ``s = 2v - 1``, ``σ = 2h - 1``, ``v, h ∈ {0, 1}``:
    ``-E = 4 hᵀWv + (2a - 2Wᵀ1)·v + (2b - 2W1)·h + (ΣW - Σa - Σb)``; rbms stores the
    weights as ``(n_visible, n_hidden)`` and sums ``h`` out with softplus, so the constant ``C``
    is ``ΣW - Σa - Σb``.
    """
    w, a, b = (np.asarray(x) for x in (model.weights, model.visible_bias, model.hidden_bias))
    params = BBRBM(
        weight_matrix=torch.from_numpy(4 * w.T.copy()),
        vbias=torch.from_numpy(2 * a - 2 * w.sum(0)),
        hbias=torch.from_numpy(2 * b - 2 * w.sum(1)),
    )
    return params, float(w.sum() - a.sum() - b.sum())


def rbms_thunk(params, configs, threads: int):
    """Baseline (b) at a given torch thread count.

    On a loaded 2-core machine torch's OpenMP threads often wait at barriers for a core, so
    either thread count may win; both are timed and the faster is reported.
    """

    def run():
        torch.set_num_threads(threads)
        return compute_partition_function_rbm(params, configs)

    return run


def rbms_configs(n: int, dtype) -> "torch.Tensor":
    """All visible configurations ``v = (s + 1) / 2`` in ebmflow's index order, as rbms expects them."""
    s = np.asarray(ebmflow.all_states(n, dtype))
    return torch.from_numpy((s + 1) / 2)


# ---------------------------------------------------------------- timing


def block(out):
    """Wait for JAX results; torch results are already synchronous (rbms returns a float)."""
    return jax.block_until_ready(out)


def time_interleaved(fns: dict, repeats: int, warmup: int = 1, min_seconds: float = 1.0) -> dict:
    """Min and median seconds of each thunk; one repeat runs every thunk once, in turn.

    Fast cases get more repeats (up to 50, about ``min_seconds`` in all), so that the minimum
    is not one unlucky time slice on a shared machine.
    """
    start = time.perf_counter()
    for fn in fns.values():
        for _ in range(warmup):
            block(fn())
    per_round = (time.perf_counter() - start) / warmup
    repeats = max(repeats, min(50, int(min_seconds / per_round)))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            block(fn())
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}, repeats


def max_rel_diff(tree_a, tree_b) -> float:
    leaves = zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b))
    return max(float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(x)) + 1e-300)) for x, y in leaves)


# ---------------------------------------------------------------- one size


def bench(n: int, dtype, repeats: int, chunk_size: int | None = None) -> dict:
    model, target = make_problem(n, dtype)
    row = {"n": n, "dtype": jnp.dtype(dtype).name, "notes": []}
    chunked = ebmflow.with_chunk_size(model, chunk_size)
    fns = {"ebmflow": lambda: ebmflow_kl_and_grad(chunked, target)}
    value, grad = block(fns["ebmflow"]())

    states = None
    try:
        states = ebmflow.all_states(n, dtype)
        need = naive_bytes(model, states, target.probs)
    except ebmflow.MemoryBudgetError as error:
        need = float("inf")
        row["notes"].append(f"naive: {error}")
    if need <= NAIVE_LIMIT:
        fns["naive"] = lambda: naive_kl_and_grad(model, states, target.probs)
        naive_value, naive_grad = block(fns["naive"]())
        row["check naive"] = (
            f"|KL - KL_naive| = {abs(float(value - naive_value)):.1e}, "
            f"max rel grad diff {max_rel_diff(grad, naive_grad):.1e}; XLA's estimate {need / GiB:.2f} GiB"
        )
    else:
        row["notes"].append(f"naive skipped: needs {need / GiB:.1f} GiB > {NAIVE_LIMIT / GiB:.0f} GiB")
        states = None

    if RBMS_SKIPPED is None:
        rbms_need = 2**n * (2 * n + 3 * model.n_hidden) * jnp.dtype(dtype).itemsize
        if rbms_need <= NAIVE_LIMIT:
            params, constant = to_rbms(model)
            configs = rbms_configs(n, dtype)
            log_z, log_z_rbms = float(ebmflow.log_partition(model)), compute_partition_function_rbm(params, configs)
            row["check rbms"] = (
                f"ln Z ebmflow = {log_z:.10g}, ln Z rbms + C = {log_z_rbms + constant:.10g} "
                f"(C = {constant:.6g}), rel diff {abs(log_z_rbms + constant - log_z) / abs(log_z):.1e}"
            )
            for threads in sorted({1, TORCH_THREADS}):
                fns[f"rbms@{threads}"] = rbms_thunk(params, configs, threads)
        else:
            row["notes"].append(f"rbms skipped: its all_config and temporaries need ~{rbms_need / GiB:.1f} GiB")

    u = jnp.linspace(0, 1, 2**n, dtype=dtype)
    v = jnp.linspace(0, 0.5, model.n_hidden, dtype=dtype)
    fns["roofline"] = lambda: roofline(u, v)

    row["times"], row["repeats"] = time_interleaved(fns, repeats)
    rbms_runs = {k: v for k, v in row["times"].items() if k.startswith("rbms@")}
    if rbms_runs:  # report rbms at its faster thread count
        best = min(rbms_runs, key=lambda k: rbms_runs[k][0])
        row["times"]["rbms"] = rbms_runs[best]
        row["notes"].append("rbms torch threads: " + ", ".join(
            f"{k[5:]} -> {v[0] * 1e3:.2f} ms" for k, v in rbms_runs.items()) + f" (reported: {best[5:]})")
    row["work"] = 2**n * model.n_hidden  # (state, hidden unit) pairs
    return row


# ---------------------------------------------------------------- report


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "?"


def print_machine():
    print(f"machine: {platform.machine()} processor={platform.processor()!r} ({cpu_name()}), "
          f"os.cpu_count()={os.cpu_count()}, jax.devices()={jax.devices()}")
    packages = ("jax", "jaxlib", "equinox", "ebmflow", "torch", "rbms")
    print("versions: " + ", ".join(f"{p} {version(p)}" for p in packages))
    print(f"python {platform.python_version()}; torch default threads: {TORCH_THREADS if torch else '-'}; "
          f"load average (1, 5, 15 min) at the start: {os.getloadavg()} (timings drift on a shared machine)")


def fmt(t):
    return "-" if t is None else f"{t[0] * 1e3:9.2f} {t[1] * 1e3:9.2f}"


def both(t: dict, name: str, width_a: int, width_b: int) -> str:
    """``baseline/ebmflow`` and ``ebmflow/baseline`` of min times, or dashes for a skipped baseline."""
    if name not in t:
        return f"{'-':>{width_a}} {'-':>{width_b}}"
    e = t["ebmflow"]
    return f"{t[name] / e:{width_a}.2f} {e / t[name]:{width_b}.3f}"


def print_rows(rows):
    print("\ntimes in ms, min and median over repeats (after warm-up)")
    print(f"{'dtype':>7} {'n':>3} | {'ebmflow':>19} | {'naive (a)':>19} | {'rbms (b)':>19} | {'roofline (c)':>19} "
          f"| {'states*hidden/s':>15} | repeats")
    for row in rows:
        t = row["times"]
        print(f"{row['dtype']:>7} {row['n']:>3} | {fmt(t['ebmflow'])} | {fmt(t.get('naive'))} | {fmt(t.get('rbms'))} "
              f"| {fmt(t['roofline'])} | {row['work'] / t['ebmflow'][0]:15.3e} | {row['repeats']:>7}")

    print("\nratios of min times")
    print(f"{'dtype':>7} {'n':>3} | {'speed-up vs naive':>17} {'ebmflow/naive':>13} | {'speed-up vs rbms':>16} "
          f"{'ebmflow/rbms':>12} | {'time relative to roofline':>25} {'roofline/ebmflow':>16}")
    for row in rows:
        t = {k: v[0] for k, v in row["times"].items()}
        e = t["ebmflow"]

        print(f"{row['dtype']:>7} {row['n']:>3} | {both(t, 'naive', 17, 13)} | {both(t, 'rbms', 16, 12)} "
              f"| {e / t['roofline']:25.2f} {t['roofline'] / e:16.3f}")
    print("(speed-up = baseline time / ebmflow time; time relative to roofline = ebmflow time / roofline time)")

    print("\nchecks and notes")
    for row in rows:
        for key in ("check naive", "check rbms"):
            if key in row:
                print(f"  {row['dtype']} n={row['n']} {key}: {row[key]}")
        for note in row["notes"]:
            print(f"  {row['dtype']} n={row['n']} {note}")
    if RBMS_SKIPPED:
        print(f"  baseline (b) skipped: {RBMS_SKIPPED}")


def print_targets(rows):
    row = next((r for r in rows if r["n"] == 20 and r["dtype"] == "float32"), None)
    if row is None:
        print("\nissue targets are stated at n=20 float32, which this run did not include")
        return
    t = {k: v[0] for k, v in row["times"].items()}
    e = t["ebmflow"]
    print("\nissue targets at n=20, float32 (min times)")
    for name in ("naive", "rbms"):
        if name in t:
            ok = t[name] / e >= TARGET_SPEEDUP
            print(f"  >= {TARGET_SPEEDUP:.0f}x faster than {name}: {t[name] / e:.2f}x  {'MET' if ok else 'MISSED'}")
        else:
            print(f"  >= {TARGET_SPEEDUP:.0f}x faster than {name}: not measured")
    ratio = e / t["roofline"]
    verdict = "MET" if ratio <= TARGET_ROOFLINE else "MISSED"
    print(f"  time <= {TARGET_ROOFLINE:.0f} x roofline: {ratio:.2f} x  {verdict}")


# ---------------------------------------------------------------- memory check (subprocess)


def peak_rss() -> tuple[int, int]:
    """``(ru_maxrss, VmHWM)`` in bytes.

    Linux carries ``ru_maxrss`` over ``execve`` (and Python's subprocess may vfork), so a child's
    ru_maxrss is at least its parent's peak; VmHWM, the high-water mark of this process image's
    own memory, is not inherited. The memory check runs before any timing, while the parent is small.
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    try:
        with open("/proc/self/status") as f:
            hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        hwm = maxrss
    return maxrss, hwm


def memory_child(n: int) -> dict:
    """Runs in a fresh process: float32 value-and-gradient at n spins, n hidden units."""
    dtype = jnp.float32
    model = ebmflow.RBM.init(jax.random.PRNGKey(0), n, n_hidden=n, scale=0.1, dtype=dtype)
    # A random positive target: 2**n float32 numbers, the least any target can take. NumPy draws it
    # in place (jax.random's threefry would peak at ~1.2 GiB here just making the numbers).
    probs = np.random.default_rng(1).random(2**n, dtype=np.float32)
    probs += 0.5
    target = ebmflow.Target.from_probs(probs, normalize=True)
    del probs
    rss_target = peak_rss()
    start = time.perf_counter()
    compiled = ebmflow_kl_and_grad.lower(model, target).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    value, _ = jax.block_until_ready(compiled(model, target))
    run_s = time.perf_counter() - start
    return {"n": n, "kl": float(value), "rss_after_target": rss_target, "peak_rss": peak_rss(),
            "compile_s": compile_s, "run_s": run_s, "target_bytes": target.probs.nbytes}


def run_memory_check(n: int = 26):
    print(f"\nmemory check: n={n}, {n} hidden units, float32 value-and-gradient, in a subprocess")
    out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        print(f"  subprocess failed ({out.returncode}):\n{out.stderr[-3000:]}")
        return
    r = json.loads(out.stdout.strip().splitlines()[-1])
    (maxrss_t, hwm_t), (maxrss, hwm) = r["rss_after_target"], r["peak_rss"]
    ok = max(maxrss, hwm) < TARGET_MEMORY
    print(f"  target vector {r['target_bytes'] / GiB:.3f} GiB; peak RSS once the target is built: "
          f"VmHWM {hwm_t / GiB:.3f} GiB, ru_maxrss {maxrss_t / GiB:.3f} GiB")
    print(f"  peak RSS over the whole run: VmHWM {hwm / GiB:.3f} GiB, ru_maxrss {maxrss / GiB:.3f} GiB "
          f"(target < {TARGET_MEMORY / GiB:.0f} GiB: {'MET' if ok else 'MISSED'})")
    print(f"  compile {r['compile_s']:.2f} s, one value-and-gradient {r['run_s']:.2f} s "
          f"({2**n * n / r['run_s']:.3e} states*hidden/s), KL = {r['kl']:.6g}")


# ---------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="12,16,20,22", help="comma-separated n (default 12,16,20,22)")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes (default float32,float64)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed repeats after warm-up (default 3; fast cases get more, ~1 s in all)")
    parser.add_argument("--chunk-size", type=int, help="states per chunk passed to ebmflow (default: ebmflow's)")
    parser.add_argument("--memory", action="store_true", help="also run the n=26 float32 memory check")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    dtypes = [jnp.dtype(d) for d in args.dtypes.split(",")]
    load_rbms()
    print_machine()
    if args.memory:  # first, while this process is small (see peak_rss)
        run_memory_check()
    print(f"\nsizes n={sizes} (n visible spins, n spin hidden units), dtypes {[d.name for d in dtypes]}, "
          f"repeats {args.repeats}, ebmflow chunk_size {args.chunk_size or 'default'}")
    print("float32 is a speed option; float64 is ebmflow's default for analysis")
    rows = []
    for dtype in dtypes:
        for n in sizes:
            rows.append(bench(n, dtype, args.repeats, args.chunk_size))
            t = rows[-1]["times"]
            print(f"  done {dtype.name} n={n}: ebmflow {t['ebmflow'][0] * 1e3:.2f} ms", flush=True)
    print_rows(rows)
    print_targets(rows)
    print(f"\nload average (1, 5, 15 min) at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
