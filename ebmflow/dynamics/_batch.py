"""Batches of learning runs: vmapped over members, and split over the devices of a mesh (one run per member)."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._tree import take


def batch_size(models, function: str) -> int:
    """The one leading batch size of every parameter, or a ValueError naming ``function``."""
    sizes = {x.shape[0] if x.ndim else 0 for x in jax.tree_util.tree_leaves(eqx.filter(models, eqx.is_array))}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            f"{function} needs models with one leading batch axis on every parameter, e.g. "
            f"eqx.filter_vmap(lambda k: RBM.init(k, 8, 16))(keys); got leading sizes {sorted(sizes)} "
            f"(for a single model, use ebmflow.{function.removesuffix('_batch')})"
        )
    return sizes.pop()


@eqx.filter_jit
def _vmapped(run_one, models, target, args, static, target_axis):
    return eqx.filter_vmap(lambda m, t: run_one(m, t, *args, static), in_axes=(eqx.if_array(0), target_axis))(
        models, target
    )


@eqx.filter_jit
def _split(run_one, models, target, args, static, target_axis, mesh):
    (axis,) = mesh.axis_names
    batch, replicated = jax.sharding.PartitionSpec(axis), jax.sharding.PartitionSpec()

    def local(models, target, args):  # this device's members, each with its own solver loop
        return _vmapped(run_one, models, target, args, static, target_axis)

    in_specs = (batch, replicated if target_axis is None else batch, replicated)
    return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=batch, check_vma=False)(models, target, args)


def run_batch(run_one, models, target, args, static, target_axis, mesh, size: int):
    """``run_one(model, target, *args, static)`` for every member: one compilation, vmapped.

    ``run_one`` is a module-level function and ``static`` hashable (both are part of the
    compiled program's key); ``args`` are arrays shared by the members.

    With a mesh of ``D`` devices the members are split into ``D`` contiguous runs (the last
    padded by repeating its final member, whose copies are dropped): each device vmaps its own
    members, so a member's solver loop never waits for another device's.
    """
    if mesh is None or mesh.size == 1:
        return _vmapped(run_one, models, target, args, static, target_axis)
    per = -(-size // mesh.size)
    pad = lambda tree: jax.tree_util.tree_map(  # noqa: E731
        lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], per * mesh.size - size, 0)]) if eqx.is_array(x) else x, tree
    )
    out = _split(run_one, pad(models), target if target_axis is None else pad(target), args, static, target_axis,
                 mesh)
    return take(out, slice(0, size))
