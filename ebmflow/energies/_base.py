"""The abstract energy every model derives from."""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, Int, PyTree

from .._space import join_states


class AbstractEnergy(eqx.Module):
    """An energy ``E_θ(s)`` over ``n`` spins, ``p_θ(s) = exp(-E_θ(s)) / Z``.

    Subclasses define the static int ``n`` and `energy` for **one** state, the
    definition of the model. A user-defined energy needs only these two members::

        class Pairwise(ebmflow.AbstractEnergy):
            n: int = eqx.field(static=True)
            theta: jax.Array

            def energy(self, s):
                return -self.theta * jnp.sum(s[:-1] * s[1:])

    Exact sums split the sites into low bits ``s_lo`` (sites ``0..k-1``) and high
    bits ``s_hi`` (the rest) and evaluate every low-bit state against one high-bit
    state at a time, through a pair of methods: `lo_features` computes once per sum
    what depends on the low bits alone, and `neg_energy_chunk` finishes ``-E`` from
    it for each high-bit state. The defaults vmap `energy`; a model overrides both
    together to move work out of the loop (an RBM computes ``W_lo s_lo`` once, so
    each chunk adds instead of multiplying; THEORY §8). An override must hold for
    every split ``k = 0..n`` (``s_lo`` of shape ``(1, 0)`` at ``k = 0``, ``s_hi`` of
    shape ``(0,)`` at ``k = n``); tests check the pair against `energy`.
    """

    n: eqx.AbstractVar[int]

    #: True when ``-E`` is linear in the parameters (an exponential family): `curvature` is then zero
    #: and exact Hessians skip it.
    linear_in_parameters: ClassVar[bool] = False

    @abc.abstractmethod
    def energy(self, s: Float[Array, " n"]) -> Float[Array, ""]:
        """Energy of one state ``s`` of shape ``(n,)`` with entries ±1."""

    def lo_features(self, s_lo: Float[Array, "l k"]) -> PyTree[Float[Array, "..."]]:
        """What `neg_energy_chunk` needs of the ``l`` low-bit states ``s_lo`` (sites ``0..k-1``).

        Any pytree of floating arrays, computed once per exact sum; gradients flow
        through it to the parameters. This default returns ``s_lo`` itself.
        """
        return s_lo

    def neg_energy_chunk(self, features: PyTree[Float[Array, "..."]], s_hi: Float[Array, " n-k"]) -> Float[Array, " l"]:
        """``-E`` of the ``l`` states ``s = (s_lo[j], s_hi)``, from ``features = self.lo_features(s_lo)``.

        ``s_hi`` holds sites ``k..n-1`` of one state. This default vmaps `energy`.
        """
        return -jax.vmap(self.energy)(join_states(features, s_hi))

    def curvature(self, weights: Float[Array, " l"], s: Float[Array, "l n"]) -> Float[Array, "P P"]:
        """``Σ_i weights_i ∇²_θ(-E_θ(s_i))`` over the flat parameters (`flatten` order), ``(P, P)``.

        The part of the exact Hessian that the covariance of ``∇_θ(-E)`` misses
        (`ebmflow.hessian`). This default differentiates `energy` twice (forward over
        reverse); a model whose curvature has structure overrides it (an RBM's lives
        in one ``(n+1) × (n+1)`` block per hidden unit). Unused when `linear_in_parameters`.
        """
        theta, unflatten = flatten(self)
        return jax.hessian(lambda t: weights @ -jax.vmap(unflatten(t).energy)(s))(theta)

    @property
    def width(self) -> int:
        """Numbers evaluated per state (sizes memory estimates); hidden units for an RBM."""
        return self.n


def as_parameter(x) -> Array:
    """``jnp.asarray(x)``, with integer or boolean arrays made the default float: only inexact arrays train."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def parameters(model: eqx.Module):
    """The trainable leaves of a model: its inexact arrays."""
    return eqx.filter(model, eqx.is_inexact_array)


def model_dtype(model: eqx.Module):
    """The floating dtype of a model's parameters (the default float if it has none)."""
    leaves = jax.tree_util.tree_leaves(parameters(model))
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)


def cast_parameters(model: eqx.Module, dtype) -> eqx.Module:
    """The model with its parameters (inexact arrays) cast to ``dtype``."""
    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, model)


def flatten(model: eqx.Module):
    """``(θ, unflatten)``: the parameters as one vector ``(P,)`` and the map back to a model."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    return flat, lambda theta: eqx.combine(unravel(theta), static)


def take(tree, index):
    """``tree`` with every array leaf indexed by ``index`` (a batch member, a save time, ``(i, -1)``, ...)."""
    return jax.tree_util.tree_map(lambda x: x[index] if eqx.is_array(x) else x, tree)


def flat_indices(model: eqx.Module) -> PyTree[Int[np.ndarray, "..."]]:
    """The model's parameters replaced by their positions in the `flatten` vector (NumPy integer arrays)."""
    leaves, treedef = jax.tree_util.tree_flatten(parameters(model))
    offsets = np.cumsum([0] + [leaf.size for leaf in leaves])
    return jax.tree_util.tree_unflatten(
        treedef, [np.arange(start, start + leaf.size).reshape(leaf.shape) for start, leaf in zip(offsets, leaves)]
    )
