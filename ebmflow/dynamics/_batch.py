"""Batches of learning runs: vmapped over members, and split over the devices of a mesh (one run per member)."""

from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from .._tree import take
from ..energies._base import AbstractEnergy, energy_output


def batch_size(models, function: str) -> int:
    """The one leading batch size of every parameter, or a ValueError naming ``function``."""
    sizes = {x.shape[0] if x.ndim else 0 for x in jax.tree_util.tree_leaves(eqx.filter(models, eqx.is_array))}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            f"{function} needs models with one leading batch axis on every parameter, e.g. "
            f"eqx.filter_vmap(lambda k: RBM.init(k, 8, 16))(keys); got leading sizes {sorted(sizes)} "
            f"(for a single model, use ebmflow.{function.removesuffix('_batch')})"
        )
    if _single(models):
        raise ValueError(
            f"{function} got a single {type(models).__name__} (its energy of one state is a scalar): give models with "
            f"a leading batch axis on every parameter, e.g. eqx.filter_vmap(lambda k: RBM.init(k, 8, 16))(keys), or "
            f"use ebmflow.{function.removesuffix('_batch')}"
        )
    return sizes.pop()


def _single(models) -> bool:
    """True for one model whose parameters merely have equal leading sizes (a batch's energy is not a scalar)."""
    try:
        return isinstance(models, AbstractEnergy) and energy_output(models).shape == ()
    except Exception:  # a batch whose energy does not even trace
        return False


@eqx.filter_jit
def _vmapped(run_one, models, target, args, static, target_axis):
    return eqx.filter_vmap(lambda m, t: run_one(m, t, *args, static), in_axes=(eqx.if_array(0), target_axis))(
        models, target
    )


def run_batch(run_one, models, target, args, static, target_axis, mesh, size: int):
    """``run_one(model, target, *args, static)`` for every member, vmapped.

    ``run_one`` is a module-level function and ``static`` hashable (both are part of the
    compiled program's key); ``args`` are arrays shared by the members.

    With a mesh of ``D`` devices the members are split into ``D`` contiguous runs (the last
    padded by repeating its final member, whose copies are dropped), and each run is sent to
    its device as an independent program, so that a member's solver loop never waits for
    another device's. The program is compiled once per device, the devices' compilations and
    runs proceeding concurrently. (One SPMD program over all devices, by `jax.shard_map` or
    `jax.pmap`, hangs in jaxlib 0.10.2's CPU runtime for these solver loops.) In a multi-process
    run each process runs its own devices' members and the results are gathered everywhere.
    """
    if mesh is None or mesh.size == 1:
        return _vmapped(run_one, models, target, args, static, target_axis)
    devices = list(mesh.devices.flat)
    per = -(-size // len(devices))

    def pad(tree):
        return jax.tree_util.tree_map(
            lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], per * len(devices) - size, 0)]) if eqx.is_array(x)
            else x, tree
        )

    models = pad(models)
    target = target if target_axis is None else pad(target)

    def run(k):
        part = slice(k * per, (k + 1) * per)
        put = lambda tree: jax.device_put(tree, devices[k])  # noqa: E731
        member_target = target if target_axis is None else take(target, part)
        return _vmapped(run_one, put(take(models, part)), put(member_target), put(args), static, target_axis)

    mine = [k for k, device in enumerate(devices) if device.process_index == jax.process_index()]
    with ThreadPoolExecutor(len(mine)) as pool:
        outs = list(pool.map(run, mine))
    out = jax.tree_util.tree_map(lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *outs)
    if jax.process_count() > 1:
        out = jax.tree_util.tree_map(lambda x: x.reshape(-1, *x.shape[2:]),
                                     multihost_utils.process_allgather(out))
    return jax.tree_util.tree_map(jnp.asarray, take(out, slice(0, size)))
