"""Devices and processes: one host CPU device per core, and runs over several processes (`jax.distributed`).

JAX fixes its devices when its backend starts (the first computation). On a CPU it shows
one device unless ``jax_num_cpu_devices`` (or ``XLA_FLAGS=--xla_force_host_platform_device_count``)
is set before that; ebmflow's Python API leaves this to the user, and the command line sets it
(one device per core by default). Sharded sums and batches then use those devices
(`ebmflow.sharded`, ``flow_batch(..., mesh=...)``).
"""

import os

import jax


def use_cpu_devices(count: int | None = None) -> int:
    """Ask for ``count`` host CPU devices (default: one per core) before JAX's backend starts; returns the count.

    After the backend has started the request cannot take effect: the devices JAX already
    has are kept (and their number returned).
    """
    count = (os.cpu_count() or 1) if count is None else count
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of CPU devices must be a positive int; got {count!r}")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend is already running (e.g. a notebook or a test that computed before)
        return len(jax.local_devices())
    return count


def initialize_distributed(
    coordinator_address: str, num_processes: int, process_id: int, *, cpu_devices: int | None = None
):
    """Join a run of ``num_processes`` processes (`jax.distributed.initialize`); call before any computation.

    ``coordinator_address``: ``"host:port"`` of process 0 (``"127.0.0.1:port"`` on one machine).
    On CPUs, collectives between processes use gloo and each process brings ``cpu_devices`` devices
    (default one per core). Afterwards ``jax.devices()`` lists every process's devices, the default
    mesh of `ebmflow.sharded` spans them all, and results files are written by process 0 only.
    """
    for name, value in dict(num_processes=num_processes, process_id=process_id).items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int; got {value!r}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}); got {process_id}")
    use_cpu_devices(cpu_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_writer() -> bool:
    """True in the process that writes results files (process 0; the only one outside multi-process runs)."""
    return jax.process_index() == 0
