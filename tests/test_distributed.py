"""Two processes on this machine (loopback only) run sharded sums and batches with `jax.distributed`."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import ebmflow

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(i), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    for i in (0, 1):
        report = json.loads((tmp_path / f"process_{i}.json").read_text())
        assert report["process_index"] == i and report["devices"] == 4
        assert report["kl"] < 1e-12 and report["grad"] < 1e-12 and report["couplings"] < 1e-12
        assert report["batch"] < 1e-12
    shared = list((tmp_path / "shared").iterdir())
    assert [p.name for p in shared] == ["results.npz"]  # written once, by process 0, no temporary files left
    assert ebmflow.load(shared[0]).metadata["name"] == "written once"
