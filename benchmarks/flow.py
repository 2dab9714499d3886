"""Exact gradient flow of problem F1: ebmflow's default solver against a plain diffrax Tsit5 solve.

Problem F1 (float64): a student `RBM` with ``n = 8`` visible spins and 16 spin hidden units,
weights N(0, 0.01²) and zero biases (``RBM.init(key(seed), 8, 16, scale=0.01)``), learning the
distribution of a random generalised Ising teacher with field std 0.2, pair std 0.3/√n and
triplet std 0.5/n (``targets.random_ising``). The flow runs to ``t1 = 1e5`` with rtol 1e-6 and
atol 1e-9, saved at ``t = 0`` and 61 log-spaced times from 0.1 to 1e5 (`ebmflow.save_times`).

Parts, all in one process so that the speed figures are ratios of times taken on the same
(shared, drifting) machine:

1. ebmflow's default, ``ebmflow.flow(model, target, 1e5, rtol=1e-6, atol=1e-9)`` (RODAS4 with the
   exact Hessian): the first call (compilation and run), then ``--repeats`` later calls before the
   baseline and ``--repeats`` after it. Compile time = first call - fastest later call. Also the
   time `flow` spends recording the observables after its solve (compiled ``Objective.observe`` at
   θ0 and the 62 save times, t = 0 among them), as a fraction of a whole call (issue: a small
   fraction of the integration).
2. Baseline: what a new user would write with diffrax alone. ``jax.jit`` of one
   ``diffrax.diffeqsolve`` with ``Tsit5`` and ``PIDController(rtol=1e-6, atol=1e-9)`` on the flat
   parameters (`ebmflow.flatten`), with the vector field ``-jax.grad(θ ↦ ebmflow.kl(unflatten(θ), target))``,
   saved at the same times. The late flow is stiff (THEORY §8), so the explicit solver takes
   hundreds of thousands of steps. It is compiled ahead of time and run **once** (minutes).
3. Accuracy: KL at every save time, against a reference solution at rtol 1e-10, atol 1e-13 from
   ebmflow's own RODAS4 (the default) or from an independent method, diffrax's ``Kvaerno5`` (an
   implicit ESDIRK method; ``--reference kvaerno5``, slower). ``--reference both`` computes both and
   prints how far apart they are. The issue's target: within 1e-6 absolute or 1e-4 relative at
   every save time, for ebmflow's default.
4. Batch throughput: the 64 initialisations ``RBM.init(key(i), 8, 16, scale=0.01)``, i = 0..63,
   run to ``t1 = 1e3`` with `ebmflow.flow_batch` (one vmapped solve) against a Python loop of
   `ebmflow.flow` calls on the same models, both compiled first, then timed alternately
   ``--batch-repeats`` times (default 1: one batch call takes minutes). The loop runs over the first
   ``--loop-size`` members (default 16) and its time is scaled to 64. A roofline pass
   (`dense_floor`) times the dense algebra every step needs, vmapped: it bounds what batching can gain.

5. Busy machine (``--busy K``, only this part): the F1 flow (best of ``--repeats``) and, unless
   ``--skip-baseline``, the Tsit5 baseline (once), first on the quiet machine and then next to ``K``
   CPU-bound processes the script starts (``yes > /dev/null``, each stopped after 15 minutes at the
   latest, and killed when the part ends). Prints each one's slowdown factor. The issue's target:
   the F1 flow slows by at most 3x next to two busy processes on 2 cores.

Every KL compared in part 3 comes from the same function, ``ebmflow.kl`` of the saved parameters.

RODAS4 factorises a P × P matrix (P = 152) every step. On CPU, jaxlib does that with scipy's OpenBLAS,
which starts one thread per core; on a busy machine those threads wait for each other at every
factorisation, so ebmflow's solver loops run with one BLAS thread (``ebmflow/_threads.py``). The
baseline uses no LAPACK.

Run:  python benchmarks/flow.py [--repeats 3] [--skip-baseline] [--batch-only]
                                [--reference rodas4|kvaerno5|both] [--batch-repeats 1] [--loop-size 16]
      python benchmarks/flow.py --busy 2 [--repeats 3] [--skip-baseline]
"""

import argparse
import contextlib
import datetime
import hashlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import ebmflow
from ebmflow import save_times
from ebmflow._objective import Objective

N, N_HIDDEN, SCALE = 8, 16, 0.01
T1, RTOL, ATOL, NUM_SAVES = 1e5, 1e-6, 1e-9, 61
REF_RTOL, REF_ATOL = 1e-10, 1e-13
BASELINE_MAX_STEPS = 2_000_000
REF_MAX_STEPS = 1_000_000
BATCH, BATCH_T1 = 64, 1e3
WARMUP_T1 = 1e-3  # a short flow that compiles the same solve
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")  # printed
# The targets.
TARGET_SPEEDUP = 30.0
TARGET_BATCH = 8.0
TARGET_ABS, TARGET_REL = 1e-6, 1e-4


# ---------------------------------------------------------------- problem


def f1_student(seed: int = 0):
    return ebmflow.RBM.init(jax.random.key(seed), N, N_HIDDEN, scale=SCALE)


def f1_target(seed: int):
    stds = {1: 0.2, 2: 0.3 / N**0.5, 3: 0.5 / N}
    return ebmflow.Target.from_model(ebmflow.targets.random_ising(jax.random.key(seed), N, stds))


def kl_along(models, target) -> np.ndarray:
    """``ebmflow.kl`` at every saved model (leading axis: save times)."""
    return np.asarray(eqx.filter_jit(eqx.filter_vmap(lambda m: ebmflow.kl(m, target)))(models))


def kl_of_thetas(thetas, unflatten, target) -> np.ndarray:
    return np.asarray(jax.jit(jax.vmap(lambda th: ebmflow.kl(unflatten(th), target)))(thetas))


# ---------------------------------------------------------------- timing


def timed(fn):
    """``(result, wall seconds, process CPU seconds)`` of ``fn()``, blocking until it is ready."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - wall, time.process_time() - cpu


def min_median(xs) -> str:
    return f"{min(xs):.3f} / {statistics.median(xs):.3f}"


def stats_of(sol) -> dict:
    return {k: int(v) for k, v in sol.stats.items()}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------- machine


def commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not dirty:
        return rev
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=here, capture_output=True, check=True).stdout
    return f"{rev} + uncommitted changes (git diff HEAD sha1 {hashlib.sha1(diff).hexdigest()[:10]})"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_machine(args) -> None:
    packages = ("jax", "jaxlib", "diffrax", "equinox", "ebmflow")
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in packages)
    print(f"date      {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine   {platform.platform()}, {cpu_name()}, os.cpu_count() = {os.cpu_count()}, "
          f"jax.devices() = {jax.devices()}")
    print(f"versions  {versions}, Python {platform.python_version()}, ebmflow commit {commit()}")
    threads = {k: os.environ[k] for k in BLAS_THREAD_VARS if k in os.environ}
    print(f"threads   BLAS/OpenMP thread variables: {threads or 'none set'} (jaxlib's CPU LU calls scipy's "
          f"OpenBLAS, which threads by default)")
    print(f"load avg  {load()} (1, 5, 15 min)")
    theta0, _ = ebmflow.flatten(f1_student())
    print(f"problem   F1: RBM n = {N}, {N_HIDDEN} spin hidden units, P = {theta0.size} parameters, "
          f"2^n = {2**N} states, dtype {theta0.dtype}; teacher seed {args.target_seed}, student seed {args.seed}")
    print(f"flow      t1 = {T1:g}, rtol = {RTOL:g}, atol = {ATOL:g}, {NUM_SAVES + 1} save times (0 and "
          f"{NUM_SAVES} log-spaced from 0.1 to {T1:g}); repeats = {args.repeats}")
    print()


# ---------------------------------------------------------------- parts


class EbmflowTimer:
    """Part 1: ebmflow's default. The first call compiles; later calls are timed in rounds, one round
    before the baseline and one after, so that the ratio is not at the mercy of one load level."""

    def __init__(self, model, target):
        self.model, self.target = model, target
        self.call = lambda: ebmflow.flow(model, target, T1, rtol=RTOL, atol=ATOL)
        self.sol, self.first, _ = timed(self.call)
        self.later, self.later_cpu = [], []

    def round(self, repeats: int) -> None:
        for _ in range(repeats):
            _, wall, cpu = timed(self.call)
            self.later.append(wall)
            self.later_cpu.append(cpu)

    @property
    def best(self) -> float:
        return min(self.later)

    @property
    def compile(self) -> float:
        return self.first - self.best

    @property
    def stats(self) -> dict:
        return stats_of(self.sol)

    def report(self) -> None:
        st = self.stats
        print("[1] ebmflow.flow default (RODAS4, exact Hessian)")
        print(f"    first call (compile + run)    {self.first:.3f} s")
        print(f"    later calls, min / median     {min_median(self.later)} s "
              f"({', '.join(f'{x:.2f}' for x in self.later)}); process CPU {min_median(self.later_cpu)} s")
        print(f"    compile time (first - min)    {self.compile:.3f} s")
        print(f"    result                        {self.sol.message}")
        print(f"    stats                         steps {st['num_steps']}, accepted {st['num_accepted_steps']}, "
              f"rejected {st['num_rejected_steps']} ({st['num_rejected_steps'] / st['num_steps']:.1%}), "
              f"gradient evaluations {st['gradient_evaluations']}, Hessian evaluations {st['hessian_evaluations']}")
        print(f"    time per step                 {self.best / st['num_steps'] * 1e3:.3f} ms")
        observe = observables_time(self.sol, self.model, self.target)
        label = f"observables at {self.sol.ts.size + 1} points"
        print(f"    {label:<30}{observe * 1e3:.1f} ms (min of 5) = "
              f"{observe / self.best:.1%} of the later calls' min (issue: a small fraction of the integration)")
        print(f"    load avg                      {load()}")
        print()


def observables_time(sol, model, target, repeats: int = 5) -> float:
    """Seconds to record the observables, compiled, as `flow` does after its solve: `Objective.observe`
    (KL, ||∇L||, Δ_k, coupling errors and norms) at ``θ0`` and every saved point."""
    objective = Objective(model)
    thetas = jnp.concatenate([objective.theta0[None], jax.vmap(lambda m: ebmflow.flatten(m)[0])(sol.models)])
    observe = eqx.filter_jit(objective.observe)
    jax.block_until_ready(observe(thetas, target, 0.0))
    return min(timed(lambda: observe(thetas, target, 0.0))[1] for _ in range(repeats))


def plain_diffrax_solve(model, target, ts, solver, dt0, rtol, atol, max_steps):
    """``(jitted solve of θ0, θ0, unflatten)``: diffrax alone on the flat parameters, vector field
    ``-jax.grad(θ ↦ ebmflow.kl(unflatten(θ), target))`` (plain autodiff, not ebmflow's flow code)."""
    theta0, unflatten = ebmflow.flatten(model)

    def vector_field(t, theta, args):
        return -jax.grad(lambda th: ebmflow.kl(unflatten(th), target))(theta)

    @jax.jit
    def solve(theta0):
        return dfx.diffeqsolve(
            dfx.ODETerm(vector_field), solver, 0.0, T1, dt0, theta0,
            saveat=dfx.SaveAt(ts=ts), stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps, throw=False,
        )

    return solve, theta0, unflatten


def run_baseline(model, target, ts) -> dict:
    """Part 2: plain diffrax Tsit5 on the flat parameters, compiled ahead of time, run once."""
    solve, theta0, unflatten = plain_diffrax_solve(model, target, ts, dfx.Tsit5(), None, RTOL, ATOL,
                                                   BASELINE_MAX_STEPS)
    wall = time.perf_counter()
    compiled = solve.lower(theta0).compile()
    compile_time = time.perf_counter() - wall
    print(f"[2] baseline: jax.jit(diffrax.diffeqsolve(Tsit5, PIDController(rtol={RTOL:g}, atol={ATOL:g}))), "
          f"run once (load avg {load()})", flush=True)
    sol, run, run_cpu = timed(lambda: compiled(theta0))
    steps = int(sol.stats["num_steps"])
    rejected = int(sol.stats["num_rejected_steps"])
    print(f"    compile time (AOT)            {compile_time:.3f} s")
    print(f"    run (once)                    {run:.3f} s  (process CPU {run_cpu:.3f} s)")
    ok = sol.result == dfx.RESULTS.successful
    print(f"    result                        {'successful' if ok else sol.result}")
    print(f"    stats                         steps {steps}, accepted {int(sol.stats['num_accepted_steps'])}, "
          f"rejected {rejected} ({rejected / steps:.1%}), gradient evaluations ~{6 * steps + 1}")
    print(f"    time per step                 {run / steps * 1e6:.1f} µs")
    print(f"    load avg                      {load()}")
    print()
    return dict(kl=kl_of_thetas(sol.ys, unflatten, target) if ok else None, run=run, run_cpu=run_cpu,
                compile=compile_time, steps=steps, ok=ok)


def reference_kvaerno5(model, target, ts) -> tuple[np.ndarray, dict]:
    """Independent reference: diffrax Kvaerno5 (ESDIRK, Newton with the exact Jacobian) at tight tolerances."""
    solve, theta0, unflatten = plain_diffrax_solve(model, target, ts, dfx.Kvaerno5(), 1e-3, REF_RTOL, REF_ATOL,
                                                   REF_MAX_STEPS)
    sol, wall, _ = timed(lambda: solve(theta0))
    if sol.result != dfx.RESULTS.successful:
        raise RuntimeError(f"Kvaerno5 reference failed: {sol.result}")
    info = dict(steps=int(sol.stats["num_steps"]), rejected=int(sol.stats["num_rejected_steps"]), wall=wall)
    return kl_of_thetas(sol.ys, unflatten, target), info


def reference_rodas4(model, target) -> tuple[np.ndarray, dict]:
    """ebmflow's own solver at tight tolerances (not independent of the solver under test)."""
    sol, wall, _ = timed(lambda: ebmflow.flow(model, target, T1, rtol=REF_RTOL, atol=REF_ATOL,
                                              max_steps=REF_MAX_STEPS))
    st = stats_of(sol)
    return kl_along(sol.models, target), dict(steps=st["num_steps"], rejected=st["num_rejected_steps"], wall=wall)


def accuracy(name: str, kl: np.ndarray, kl_ref: np.ndarray, ts: np.ndarray) -> dict:
    err = np.abs(kl - kl_ref)
    rel = err / kl_ref
    # t = 0 is the initial model in every solution; it is exact and left in.
    within = (err <= TARGET_ABS) | (rel <= TARGET_REL)
    i, j = int(np.argmax(err)), int(np.argmax(rel))
    print(f"    {name:<28} max |ΔKL| = {err[i]:.2e} (t = {ts[i]:.3g}),  max |ΔKL|/KL_ref = {rel[j]:.2e} "
          f"(t = {ts[j]:.3g});  within target at {within.sum()}/{within.size} save times")
    return dict(abs=float(err[i]), rel=float(rel[j]), met=bool(within.all()), misses=int((~within).sum()))


def run_batch(target, repeats: int, loop_size: int) -> dict:
    """Part 4: flow_batch over 64 initialisations against a Python loop of ebmflow.flow."""
    keys = jax.vmap(jax.random.key)(jnp.arange(BATCH))
    models = eqx.filter_vmap(lambda k: ebmflow.RBM.init(k, N, N_HIDDEN, scale=SCALE))(keys)
    members = [jax.tree_util.tree_map(lambda x, i=i: x[i] if eqx.is_array(x) else x, models) for i in range(loop_size)]
    batch = lambda t1: ebmflow.flow_batch(models, target, t1, rtol=RTOL, atol=ATOL)  # noqa: E731
    one = lambda m, t1: ebmflow.flow(m, target, t1, rtol=RTOL, atol=ATOL)  # noqa: E731

    print(f"[4] batch: {BATCH} initialisations (keys 0..{BATCH - 1}), t1 = {BATCH_T1:g}; flow_batch against "
          f"a Python loop of ebmflow.flow over the first {loop_size}, scaled to {BATCH}", flush=True)
    # Warm-up: t1 and the save times are traced values, so a short run compiles the same solve.
    _, batch_warm, _ = timed(lambda: batch(WARMUP_T1))
    _, loop_warm, _ = timed(lambda: one(members[0], WARMUP_T1))
    print(f"    warm-up to t1 = {WARMUP_T1:g} (compilation and a short run): flow_batch {batch_warm:.1f} s, "
          f"ebmflow.flow {loop_warm:.1f} s", flush=True)
    batch_times, loop_times = [], []
    for _ in range(repeats):  # alternated, so that a change of load hits both
        sol_b, wall, _ = timed(lambda: batch(BATCH_T1))
        batch_times.append(wall)
        wall = time.perf_counter()
        loop_sols = [one(m, BATCH_T1) for m in members]  # each call waits for its result (it checks `ok`)
        jax.block_until_ready(loop_sols)
        loop_times.append((time.perf_counter() - wall) * BATCH / loop_size)

    ok = np.asarray(sol_b.ok)
    steps = np.asarray(sol_b.stats["num_steps"])
    loop_steps = np.array([int(s.stats["num_steps"]) for s in loop_sols])
    kl_gap = np.max(np.abs(np.asarray(sol_b.kl)[:loop_size] - np.stack([np.asarray(s.kl) for s in loop_sols])))
    rate_batch, rate_loop = BATCH / min(batch_times), BATCH / min(loop_times)
    ratio = rate_batch / rate_loop
    scaled = "" if loop_size == BATCH else f", measured over {loop_size} and scaled"
    print(f"    flow_batch, {BATCH} flows, min / median          {min_median(batch_times)} s")
    print(f"    Python loop, {BATCH} flows, min / median         {min_median(loop_times)} s{scaled}")
    print(f"    flows per second: flow_batch {rate_batch:.3f}, loop {rate_loop:.3f}; ratio {ratio:.2f}")
    print(f"    batch members ok {ok.sum()}/{ok.size}; steps per member min / median / max {steps.min()} / "
          f"{int(np.median(steps))} / {steps.max()}; a vmapped solve takes max(steps) steps for every member, "
          f"{BATCH * steps.max() / steps.sum():.2f}x the sum of the members' steps")
    print(f"    time per member-step: flow_batch {min(batch_times) / (BATCH * steps.max()) * 1e3:.2f} ms, loop "
          f"{min(loop_times) * loop_size / BATCH / loop_steps.sum() * 1e3:.2f} ms")
    print(f"    KL of flow_batch vs the loop, max over {loop_size} members and save times: {kl_gap:.1e}")
    print(f"    load avg                      {load()}")
    print()
    floor = dense_floor()
    loop_step = min(loop_times) * loop_size / BATCH / loop_steps.sum()
    print(f"    dense-algebra floor per member-step (vmapped over {BATCH}: the Hessian's covariance product "
          f"(2^n × P)ᵀ(2^n × P) and one LU of P × P): {floor * 1e3:.2f} ms; loop time per step / floor = "
          f"{loop_step / floor:.2f}, the most any batching of this algorithm can gain on this machine")
    print()
    return dict(rate_batch=rate_batch, rate_loop=rate_loop, ratio=ratio, batch=batch_times, loop=loop_times,
                bound=loop_step / floor)


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` CPU-bound processes (``yes > /dev/null``, at most 15 minutes each) while the block runs."""
    procs = [subprocess.Popen(["timeout", "900", "yes"], stdout=subprocess.DEVNULL) for _ in range(count)]
    try:
        time.sleep(1)  # let the scheduler see them
        yield
    finally:
        for proc in procs:
            proc.terminate()  # `timeout` passes SIGTERM on to `yes` (a SIGKILL would orphan it)
            proc.wait()


def run_busy(model, target, ts, count: int, repeats: int, skip_baseline: bool) -> list:
    """Part 5: slowdown of the F1 flow (and of the baseline) next to ``count`` busy processes."""
    call = lambda: ebmflow.flow(model, target, T1, rtol=RTOL, atol=ATOL)  # noqa: E731
    timed(call)  # compile
    baseline = None
    if not skip_baseline:
        solve, theta0, _ = plain_diffrax_solve(model, target, ts, dfx.Tsit5(), None, RTOL, ATOL, BASELINE_MAX_STEPS)
        baseline = solve.lower(theta0).compile()
    rows = []
    for label, context in (("quiet", contextlib.nullcontext()), (f"{count} busy processes", busy_processes(count))):
        with context:
            flow_time = min(timed(call)[1] for _ in range(repeats))
            base_time = timed(lambda: baseline(theta0))[1] if baseline else float("nan")
            print(f"[5] {label:<18} ebmflow.flow {flow_time:.2f} s (best of {repeats}), Tsit5 baseline "
                  f"{base_time:.1f} s; load avg {load()}", flush=True)
        rows.append((flow_time, base_time))
    (flow_quiet, base_quiet), (flow_busy, base_busy) = rows
    print(f"    slowdown next to {count} busy processes: ebmflow.flow {flow_busy / flow_quiet:.2f}x, "
          f"baseline {base_busy / base_quiet:.2f}x")
    return [(f"F1 flow slowdown next to {count} busy processes ≤ 3×", f"{flow_busy / flow_quiet:.2f}×",
             status(flow_busy <= 3 * flow_quiet))]


def dense_floor(repeats: int = 5) -> float:
    """Seconds per member of the two dense operations every RODAS4 step needs, vmapped over the batch.

    The roofline pass of part 4: a ``(P, 2^n) @ (2^n, P)`` product (the covariance of the per-state
    gradients, the bulk of the exact Hessian) and the LU factorisation of a ``P × P`` matrix, on random
    float64 data of F1's sizes. No batched RODAS4 step can cost less per member on this machine.
    """
    size, states = ebmflow.flatten(f1_student())[0].size, 2**N
    rng = np.random.default_rng(0)
    d = jnp.asarray(rng.normal(size=(BATCH, states, size)))
    g = jnp.asarray(rng.normal(size=(BATCH, size, size))) + size * jnp.eye(size)
    work = jax.jit(jax.vmap(lambda d, g: (d.T @ d, jax.scipy.linalg.lu_factor(g))))
    jax.block_until_ready(work(d, g))
    return min(timed(lambda: work(d, g))[1] for _ in range(repeats)) / BATCH


# ---------------------------------------------------------------- main


def status(met: bool) -> str:
    return "MET" if met else "MISSED"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of every fast part (default 3)")
    parser.add_argument("--skip-baseline", action="store_true", help="skip the Tsit5 baseline (minutes)")
    parser.add_argument("--batch-only", action="store_true", help="run only the batch throughput part")
    parser.add_argument("--reference", choices=("rodas4", "kvaerno5", "both"), default="rodas4",
                        help="tight-tolerance reference for the accuracy check: ebmflow's RODAS4 (default), diffrax's "
                             "Kvaerno5 (an independent method, slower), or both")
    parser.add_argument("--loop-size", type=int, default=16,
                        help=f"members in the timed Python loop, scaled to {BATCH} (default 16)")
    parser.add_argument("--batch-repeats", type=int, default=1,
                        help="timed repeats of the batch part after its warm-up (default 1: one call takes minutes)")
    parser.add_argument("--busy", type=int, default=0, metavar="K",
                        help="run only part 5: the F1 flow quiet and next to K busy processes")
    parser.add_argument("--seed", type=int, default=0, help="student key (default 0)")
    parser.add_argument("--target-seed", type=int, default=1, help="teacher key (default 1)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch_repeats < 1 or not 1 <= args.loop_size <= BATCH:
        parser.error(f"--repeats and --batch-repeats must be >= 1 and --loop-size in 1..{BATCH}")

    print_machine(args)
    target = f1_target(args.target_seed)
    summary = []

    if args.busy:
        summary += run_busy(f1_student(args.seed), target, jnp.asarray(save_times(T1, NUM_SAVES)), args.busy,
                            args.repeats, args.skip_baseline)
    elif not args.batch_only:
        model = f1_student(args.seed)
        ts_np = save_times(T1, NUM_SAVES)
        ts = jnp.asarray(ts_np)
        ours = EbmflowTimer(model, target)
        ours.round(args.repeats)
        ours.report()
        base = None
        if not args.skip_baseline:
            base = run_baseline(model, target, ts)
            ours.round(args.repeats)  # a second round after the baseline
            again = ", ".join(f"{x:.2f}" for x in ours.later[-args.repeats:])
            print(f"[1] ebmflow.flow again, after the baseline: {again} s; over all {len(ours.later)} later calls "
                  f"min / median {min_median(ours.later)} s, compile time {ours.compile:.2f} s (load avg {load()})")
            print()

        print(f"[3] accuracy of KL at the {ts_np.size} save times (reference rtol {REF_RTOL:g}, atol {REF_ATOL:g})")
        refs = {}
        if args.reference in ("rodas4", "both"):
            refs["RODAS4 (ebmflow)"] = reference_rodas4(model, target)
        if args.reference in ("kvaerno5", "both"):
            refs["Kvaerno5 (diffrax)"] = reference_kvaerno5(model, target, ts)
        for name, (_, info) in refs.items():
            print(f"    reference {name}: {info['steps']} steps ({info['rejected']} rejected), "
                  f"{info['wall']:.1f} s with compilation")
        ref_name, (kl_ref, _) = next(iter(refs.items()))
        if len(refs) == 2:
            accuracy("Kvaerno5 vs RODAS4 reference", list(refs.values())[1][0], kl_ref, ts_np)
        kl_ours = kl_along(ours.sol.models, target)
        print(f"    KL_ref ({ref_name}): {kl_ref[0]:.4g} at t = 0, {kl_ref[-1]:.4g} at t = {T1:g}; "
              f"sol.kl agrees with ebmflow.kl of the saved models to "
              f"{np.max(np.abs(kl_ours - np.asarray(ours.sol.kl))):.0e}")
        acc_ours = accuracy("ebmflow default", kl_ours, kl_ref, ts_np)
        acc_base = accuracy("baseline Tsit5", base["kl"], kl_ref, ts_np) if base and base["ok"] else None
        print()
        summary.append(("accuracy, ebmflow default: |ΔKL| ≤ 1e-6 or |ΔKL|/KL ≤ 1e-4 at every save time",
                        f"max |ΔKL| {acc_ours['abs']:.1e}, max |ΔKL|/KL {acc_ours['rel']:.1e}",
                        status(acc_ours["met"])))
        if acc_base:
            summary.append(("accuracy, baseline (same criterion)",
                            f"max |ΔKL| {acc_base['abs']:.1e}, max |ΔKL|/KL {acc_base['rel']:.1e}",
                            status(acc_base["met"])))

        if base:
            speedup = base["run"] / ours.best
            steps = ours.stats["num_steps"]
            print("speed-up of ebmflow's default over the Tsit5 baseline (wall time, ebmflow min over later calls)")
            print(f"    {base['run']:.2f} s / {ours.best:.3f} s = {speedup:.1f}x  (with ebmflow's median: "
                  f"{base['run'] / statistics.median(ours.later):.1f}x; process CPU time: "
                  f"{base['run_cpu'] / min(ours.later_cpu):.1f}x)")
            print(f"    = {base['steps'] / steps:.0f}x fewer steps ({steps} vs {base['steps']}) "
                  f"x {(base['run'] / base['steps']) / (ours.best / steps):.3f} (baseline time per step / ebmflow's)")
            print(f"    compile times: ebmflow {ours.compile:.2f} s (first call - min later), "
                  f"baseline {base['compile']:.2f} s (ahead of time)")
            print()
            summary.append((f"speed-up over the Tsit5 baseline ≥ {TARGET_SPEEDUP:g}×", f"{speedup:.1f}×",
                            status(speedup >= TARGET_SPEEDUP)))

    if not args.busy:
        batch = run_batch(target, args.batch_repeats, args.loop_size)
        summary.append((f"flow_batch throughput over a Python loop ≥ {TARGET_BATCH:g}×",
                        f"{batch['ratio']:.2f}× (dense-algebra bound on this machine {batch['bound']:.1f}×)",
                        status(batch["ratio"] >= TARGET_BATCH)))

    print("targets")
    for what, value, verdict in summary:
        print(f"    {verdict:<7} {what}: {value}")
    print(f"load avg at the end {load()}")


if __name__ == "__main__":
    sys.exit(main())
