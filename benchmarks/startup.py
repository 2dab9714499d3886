"""Start-up: ``ebmflow demo`` run twice with an empty compilation cache, then with the programs it kept.

The command line keeps JAX's compiled programs in ``$XDG_CACHE_HOME/ebmflow/jax``. This script
points ``XDG_CACHE_HOME`` at a fresh temporary folder, runs ``ebmflow demo --out DIR`` (a new
output folder each time) three times in fresh processes, and prints each wall time: the first
run compiles and fills the cache, the later ones read it back. A fourth run with ``--no-cache``
shows the cost without the cache. Target (the reliability issue): the second run takes at most
half as long as the first.

Run:  python benchmarks/startup.py
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_demo(out: Path, env: dict, *extra: str) -> float:
    ebmflow = Path(sys.executable).with_name("ebmflow")
    start = time.perf_counter()
    subprocess.run([str(ebmflow), "demo", "--out", str(out), *extra], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    print(f"machine: {platform.machine()}, cpus {os.cpu_count()}, python {platform.python_version()}; "
          f"load {os.getloadavg()}")
    folder = Path(tempfile.mkdtemp(prefix="ebmflow-startup-"))
    try:
        env = dict(os.environ, XDG_CACHE_HOME=str(folder / "cache"), MPLBACKEND="Agg")
        env.pop("EBMFLOW_COMPILATION_CACHE", None)
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        times = [run_demo(folder / f"demo{i}", env) for i in range(3)]
        size = sum(f.stat().st_size for f in (folder / "cache").rglob("*") if f.is_file())
        uncached = run_demo(folder / "demo-no-cache", env, "--no-cache")
        print(f"ebmflow demo: first run (empty cache) {times[0]:.1f} s; second {times[1]:.1f} s; third "
              f"{times[2]:.1f} s; with --no-cache {uncached:.1f} s; cache {size / 2**20:.1f} MiB")
        ratio = times[1] / times[0]
        print(f"second / first = {ratio:.2f} (target <= 0.5: {'MET' if ratio <= 0.5 else 'MISSED'}); load at the end "
              f"{os.getloadavg()}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
