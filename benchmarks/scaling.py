"""Scale-out: exact sums and flow batches on 1 against 2 host CPU devices, and the largest exact n.

JAX fixes its devices when it starts, so every measurement runs in a fresh child process
(``jax_num_cpu_devices`` = 1 or 2, see `ebmflow.use_cpu_devices`); the parent alternates 1 and 2
devices ``--rounds`` times so that a change of load hits both, and reports best-of ratios.

1. ``kl_and_grad`` of an `RBM` with n = 22 visible spins and 22 spin hidden units (weights
   N(0, 0.1²)) against the distribution of a random Ising teacher (fields N(0, 0.2²), pairs
   N(0, 0.09/n)), float32 and float64, with model and target `ebmflow.sharded` over the devices:
   the best of 5 warm calls.
   Target (the scale-out issue): >= 1.7x faster on 2 devices.
2. ``flow_batch`` of problem F1's 64 initialisations (benchmarks/flow.py part 4: RBM 8 x 16,
   t1 = 1e3, rtol 1e-6, atol 1e-9) with ``mesh=`` all devices, after a compiling warm-up; and,
   on 1 device, a Python loop of ``ebmflow.flow`` over 16 of them scaled to 64.
   Targets: >= 1.7x faster on 2 devices than on 1, and >= 1.5x the loop.
3. The largest n whose ``kl_and_grad`` (float64, RBM with n hidden units, 2 devices, default
   memory and state budgets) completes: n = 24, 26, 28, ... until a budget refuses it; the time
   of one warm call and the child's peak RSS.

Prints sizes, dtypes, machine, versions and load averages. Time only on a quiet machine
(``uptime`` load below 1): another busy process makes the ratios meaningless.

Run:  python benchmarks/scaling.py [--rounds 2] [--skip-batch] [--skip-largest] [--largest-from 24]
On a GPU machine: the same script with ``--platform gpu`` compares 1 GPU against all of them
(``CUDA_VISIBLE_DEVICES`` picks the devices of each child) and runs part 3 up to n = 32.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------- children (one measurement each)


def child(task: str, devices: int, dtype: str, n: int, platform_name: str) -> dict:
    import jax

    if platform_name == "cpu":
        jax.config.update("jax_platforms", "cpu")
        jax.config.update("jax_num_cpu_devices", devices)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import ebmflow
    from ebmflow._tree import cast_parameters

    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:devices]), ("states",))
    out = dict(task=task, devices=len(mesh.devices.flat), dtype=dtype, n=n, device_kind=jax.devices()[0].device_kind)
    if task in ("kl", "largest"):
        model = ebmflow.RBM.init(jax.random.key(0), n, n, scale=0.1)
        model = cast_parameters(model, jnp.float32 if dtype == "float32" else jnp.float64)
        teacher = ebmflow.targets.random_ising(jax.random.key(1), n, {1: 0.2, 2: 0.3 / n**0.5})
        target = ebmflow.Target.from_model(teacher)
        model, target = ebmflow.sharded(model, mesh), ebmflow.sharded(target, mesh)
        jax.block_until_ready(ebmflow.kl_and_grad(model, target))
        times = []
        for _ in range(5 if task == "kl" else 1):
            start = time.perf_counter()
            jax.block_until_ready(ebmflow.kl_and_grad(model, target))
            times.append(time.perf_counter() - start)
        out.update(seconds=min(times))
    elif task == "batch":
        import equinox as eqx

        sys.path.insert(0, HERE)
        from flow import ATOL, BATCH, BATCH_T1, N_HIDDEN, RTOL, SCALE, WARMUP_T1, N, f1_target

        target = f1_target(1)
        keys = jax.vmap(jax.random.key)(jnp.arange(BATCH))
        models = eqx.filter_vmap(lambda k: ebmflow.RBM.init(k, N, N_HIDDEN, scale=SCALE))(keys)
        batch = lambda t1: ebmflow.flow_batch(models, target, t1, mesh=mesh, rtol=RTOL, atol=ATOL)  # noqa: E731
        jax.block_until_ready(batch(WARMUP_T1).kl)
        start = time.perf_counter()
        sol = batch(BATCH_T1)
        jax.block_until_ready(sol.kl)
        out.update(seconds=time.perf_counter() - start, ok=int(np.asarray(sol.ok).sum()), members=BATCH)
        if devices == 1:
            loop_size = 16
            members = [jax.tree_util.tree_map(lambda x, i=i: x[i] if eqx.is_array(x) else x, models)
                       for i in range(loop_size)]
            one = lambda m, t1: ebmflow.flow(m, target, t1, rtol=RTOL, atol=ATOL)  # noqa: E731
            jax.block_until_ready(one(members[0], WARMUP_T1).kl)
            start = time.perf_counter()
            jax.block_until_ready([one(m, BATCH_T1).kl for m in members])
            out.update(loop_seconds=(time.perf_counter() - start) * BATCH / loop_size)
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def run_child(args, task: str, devices: int, dtype: str = "float64", n: int = 22) -> dict:
    env = dict(os.environ)
    if args.platform == "gpu":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(devices))
    command = [sys.executable, __file__, "--child", task, "--devices", str(devices), "--dtype", dtype, "--n", str(n),
               "--platform", args.platform]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return dict(task=task, devices=devices, dtype=dtype, n=n, error=last)
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- parent


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x (target >= {target}x: {'MET' if ratio >= target else 'MISSED'})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternations of 1 and 2 devices (default 2)")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-largest", action="store_true")
    parser.add_argument("--largest-from", type=int, default=24)
    parser.add_argument("--platform", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float64", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=22, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.devices, args.dtype, args.n, args.platform)))
        return

    import jax

    many = 2 if args.platform == "cpu" else len(jax.devices("gpu"))
    print(f"machine: {platform.machine()} {platform.processor() or ''}, cpus {os.cpu_count()}, "
          f"python {platform.python_version()}, jax {jax.__version__}; load {os.getloadavg()}")
    print(f"[1] kl_and_grad, RBM n = 22 (4.2e6 states), 22 hidden units, sharded over 1 and {many} devices; "
          f"best of 5 warm calls, {args.rounds} alternated rounds")
    for dtype in ("float32", "float64"):
        best = {1: float("inf"), many: float("inf")}
        for _ in range(args.rounds):
            for devices in (1, many):
                result = run_child(args, "kl", devices, dtype)
                if "error" in result:
                    print(f"    {dtype}, {devices} device(s): failed: {result['error']}")
                    continue
                best[devices] = min(best[devices], result["seconds"])
        print(f"    {dtype}: 1 device {1e3 * best[1]:.0f} ms, {many} devices {1e3 * best[many]:.0f} ms; "
              f"speed-up {verdict(best[1] / best[many], 1.7)}")
    if not args.skip_batch:
        print(f"[2] flow_batch of F1's 64 initialisations to t1 = 1e3 over 1 and {many} devices; a Python loop "
              "of ebmflow.flow (16 members, scaled to 64) on 1 device")
        best, loop = {1: float("inf"), many: float("inf")}, float("inf")
        for _ in range(args.rounds):
            for devices in (1, many):
                result = run_child(args, "batch", devices)
                if "error" in result:
                    print(f"    {devices} device(s): failed: {result['error']}")
                    continue
                best[devices] = min(best[devices], result["seconds"])
                loop = min(loop, result.get("loop_seconds", loop))
                print(f"    {devices} device(s): flow_batch {result['seconds']:.1f} s ({result['ok']}/"
                      f"{result['members']} ok)" + (f", loop {result['loop_seconds']:.1f} s" if devices == 1 else ""),
                      flush=True)
        print(f"    flow_batch on {many} devices against 1: {verdict(best[1] / best[many], 1.7)}; against the loop: "
              f"{verdict(loop / best[many], 1.5)}")
    if not args.skip_largest:
        print(f"[3] largest n for kl_and_grad (float64, RBM with n hidden units, {many} devices, default budgets)")
        n = args.largest_from
        while n <= (32 if args.platform == "gpu" else 30):
            result = run_child(args, "largest", many, "float64", n)
            if "error" in result:
                print(f"    n = {n}: {result['error'][:300]}")
                break
            print(f"    n = {n} ({2.0**n:.3g} states): one warm call {result['seconds']:.1f} s, peak RSS "
                  f"{result['peak_rss_gib']:.1f} GiB", flush=True)
            n += 2
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
