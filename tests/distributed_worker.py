"""One process of the two-process test (tests/test_distributed.py): ``python distributed_worker.py PORT ID OUT``.

Joins a run of two processes on loopback with two CPU devices each, computes a sharded
``kl_and_grad``, ``couplings`` and a flow batch over all four devices, the same on one
local device, and writes the differences (and its process index) to ``OUT/process_{ID}.json``.
Then it runs a tiny experiment through the command line; only process 0 may write its results.
"""

import json
import sys
from pathlib import Path

import ebmflow

port, process_id, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
ebmflow.initialize_distributed(f"127.0.0.1:{port}", 2, process_id, cpu_devices=2)

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

rng = np.random.default_rng(0)
n = 7
model = ebmflow.with_chunk_size(ebmflow.RBM(rng.normal(size=(3, n)), rng.normal(size=n), rng.normal(size=3)), 8)
p = rng.gamma(2.0, size=2**n)
target = ebmflow.Target.from_probs(p / p.sum())
local = jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), ("states",))
one = ebmflow.sharded(model, local)  # one local device: the single-process result
everywhere = ebmflow.sharded(model)  # all four devices of both processes
value, grad = ebmflow.kl_and_grad(everywhere, target)
value_1, grad_1 = ebmflow.kl_and_grad(one, target)
couplings = multihost_utils.process_allgather(ebmflow.couplings(everywhere), tiled=True)
keys = jax.random.split(jax.random.key(1), 6)
models = eqx.filter_vmap(lambda k: ebmflow.RBM.init(k, 5, 2, scale=0.3))(keys)
small = ebmflow.Target.from_probs(rng.dirichlet(np.ones(32)) * 0.9 + 0.1 / 32)
batch = ebmflow.flow_batch(models, small, 2.0, num_saves=3, mesh=jax.sharding.Mesh(np.asarray(jax.devices()), ("b",)))
batch_kl = np.asarray(batch.kl)  # gathered in every process by flow_batch
batch_1 = ebmflow.flow_batch(models, small, 2.0, num_saves=3)
report = dict(
    process_index=jax.process_index(), devices=len(jax.devices()),
    kl=abs(float(value) - float(value_1)) / abs(float(value_1)),
    grad=float(np.abs(ebmflow.flatten(grad)[0] - ebmflow.flatten(grad_1)[0]).max()),
    couplings=float(np.abs(couplings - np.asarray(ebmflow.couplings(one))).max()),
    batch=float(np.abs(batch_kl - np.asarray(batch_1.kl)).max()),
)
(out / f"process_{process_id}.json").write_text(json.dumps(report))
ebmflow.io.save(out / "shared" / "results.npz", dict(name="written once"), dict(kl=np.asarray([float(value)])))
