"""Parameters of Equinox modules: the trainable leaves, their dtype, and a flat view of them."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Int, PyTree


def as_parameter(x) -> Array:
    """``jnp.asarray(x)``, with integer or boolean arrays made the default float: only inexact arrays train."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def parameters(module: eqx.Module):
    """The trainable leaves of a module: its inexact arrays."""
    return eqx.filter(module, eqx.is_inexact_array)


def model_dtype(module: eqx.Module):
    """The floating dtype of a module's parameters (the default float if it has none)."""
    leaves = jax.tree_util.tree_leaves(parameters(module))
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def cast_parameters(module: eqx.Module, dtype) -> eqx.Module:
    """The module with its parameters (inexact arrays) cast to ``dtype``."""
    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, module)


def flatten(module: eqx.Module):
    """``(θ, unflatten)``: the parameters as one vector ``(P,)`` and the map back to a module."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    return flat, lambda theta: eqx.combine(unravel(theta), static)


def take(tree, index):
    """``tree`` with every array leaf indexed by ``index`` (a batch member, a save time, ``(i, -1)``, ...)."""
    return jax.tree_util.tree_map(lambda x: x[index] if eqx.is_array(x) else x, tree)


def flat_indices(module: eqx.Module) -> PyTree[Int[np.ndarray, "..."]]:
    """The module's parameters replaced by their positions in the `flatten` vector (NumPy integer arrays)."""
    leaves, treedef = jax.tree_util.tree_flatten(parameters(module))
    offsets = np.cumsum([0] + [leaf.size for leaf in leaves])
    return jax.tree_util.tree_unflatten(
        treedef, [np.arange(start, start + leaf.size).reshape(leaf.shape) for start, leaf in zip(offsets, leaves)]
    )
