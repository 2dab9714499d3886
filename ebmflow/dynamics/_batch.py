"""Batches of learning runs: vmapped over the members on one device; over a mesh, each device runs its share."""

from concurrent.futures import ThreadPoolExecutor

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from .._tree import take
from ..energies._base import AbstractEnergy, energy_output
from ..exact._target import Target


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


def batched_target_axis(target, size: int, function: str) -> int | None:
    """0 if ``target`` is a batch of targets (``probs`` of shape ``(size, q**n)``), None for one target."""
    if not (isinstance(target, Target) and target.probs.ndim == 2):
        return None
    if target.probs.shape[0] != size:
        raise ValueError(f"{function} got {size} models but a batch of {target.probs.shape[0]} targets; give one "
                         "target, or one per model")
    return 0


def _single(models) -> bool:
    """True for one model whose parameters merely have equal leading sizes (a batch's energy is not a scalar).

    Energies that flatten or sum their parameters (`PottsRBM`, `PottsPairwise`) refuse a batch
    (`check_ranks`), so their batches do not pass for one model either.
    """
    try:
        return isinstance(models, AbstractEnergy) and energy_output(models).shape == ()
    except Exception:  # a batch whose energy does not even trace
        return False


@eqx.filter_jit
def _vmapped(run_one, models, target, args, static, target_axis):
    return eqx.filter_vmap(lambda m, t: run_one(m, t, *args, static), in_axes=(eqx.if_array(0), target_axis))(
        models, target
    )


@eqx.filter_jit
def _mapped(run_one, models, target, args, static, target_axis):
    """`_vmapped`, with the members one after another (`jax.lax.map`) instead of batched."""
    arrays, rest = eqx.partition(models, eqx.is_array)
    targets = (None, target) if target_axis is None else eqx.partition(target, eqx.is_array)

    def one(x):
        member, member_target = x
        return run_one(eqx.combine(member, rest), eqx.combine(member_target, targets[1]), *args, static)

    first = jax.tree_util.tree_map(lambda a: a[0], (arrays, targets[0]))
    static_out = eqx.filter(eqx.filter_eval_shape(one, first), eqx.is_array, inverse=True)
    out = jax.lax.map(lambda x: eqx.filter(one(x), eqx.is_array), (arrays, targets[0]))
    return eqx.combine(out, static_out)


def run_batch(run_one, models, target, args, static, target_axis, mesh, size: int):
    """``run_one(model, target, *args, static)`` for every member, vmapped.

    ``run_one`` is a module-level function and ``static`` hashable (both are part of the
    compiled program's key); ``args`` are arrays shared by the members.

    With a mesh of ``D`` devices the members are split into ``D`` contiguous runs (the last
    padded by repeating its final member, whose copies are dropped), and each run is sent to
    its device as an independent program, so that a member's solver loop never waits for
    another device's. The program is compiled once per device, the devices' compilations and
    runs proceeding concurrently. On a device the members run one after another (`_mapped`):
    in jaxlib 0.10.2 a batched LAPACK call (the LU of RODAS4 under `vmap`) splits its batch over
    the CPU client's thread pool and waits for it, and two devices doing so at once deadlock
    that pool (measured: half of the runs of 64 members over 2 devices hung). For the same
    reason, one SPMD program over all devices (`jax.shard_map`, `jax.pmap`) hangs. In a
    multi-process run each process runs its own devices' members and the results are
    gathered everywhere.
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
        return _mapped(run_one, put(take(models, part)), put(member_target), put(args), static, target_axis)

    mine = [k for k, device in enumerate(devices) if device.process_index == jax.process_index()]
    with ThreadPoolExecutor(len(mine)) as pool:
        outs = list(pool.map(run, mine))
    out = jax.tree_util.tree_map(lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *outs)
    if jax.process_count() > 1:
        out = jax.tree_util.tree_map(lambda x: x.reshape(-1, *x.shape[2:]),
                                     multihost_utils.process_allgather(out))
    return jax.tree_util.tree_map(jnp.asarray, take(out, slice(0, size)))
