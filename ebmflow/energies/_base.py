"""The abstract energy every model derives from."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class AbstractEnergy(eqx.Module):
    """An energy ``E_θ(s)`` over ``n`` spins, ``p_θ(s) = exp(-E_θ(s)) / Z``.

    Subclasses define the static int ``n`` and `energy` for **one** state. They
    may override `neg_energy_block` with a faster evaluation of a block of
    states; tests check it against `energy`.

    A user-defined energy needs only these two members::

        class Pairwise(ebmflow.AbstractEnergy):
            n: int = eqx.field(static=True)
            theta: jax.Array

            def energy(self, s):
                return -self.theta * jnp.sum(s[:-1] * s[1:])
    """

    n: eqx.AbstractVar[int]

    @abc.abstractmethod
    def energy(self, s: Float[Array, " n"]) -> Float[Array, ""]:
        """Energy of one state ``s`` of shape ``(n,)`` with entries ±1."""

    def neg_energy_block(
        self, s_hi: Float[Array, "c n_hi"], s_lo: Float[Array, "l n_lo"]
    ) -> Float[Array, "c l"]:
        """``-E`` of the ``c*l`` states ``s = (s_lo[j], s_hi[i])`` at ``[i, j]``.

        Sites ``0..n_lo-1`` come from ``s_lo``, the rest from ``s_hi``; this
        default vmaps `energy`.
        """
        c, l = s_hi.shape[0], s_lo.shape[0]
        s = jnp.concatenate(
            [
                jnp.broadcast_to(s_lo[None], (c, l, s_lo.shape[1])),
                jnp.broadcast_to(s_hi[:, None], (c, l, s_hi.shape[1])),
            ],
            axis=-1,
        )
        return -jax.vmap(jax.vmap(self.energy))(s)

    @property
    def width(self) -> int:
        """Numbers evaluated per state (sizes memory estimates); hidden units for an RBM."""
        return self.n


def parameters(model: eqx.Module):
    """The trainable leaves of a model: its inexact arrays."""
    return eqx.filter(model, eqx.is_inexact_array)


def model_dtype(model: eqx.Module):
    """The floating dtype of a model's parameters (the default float if it has none)."""
    leaves = jax.tree_util.tree_leaves(parameters(model))
    return jnp.result_type(*leaves) if leaves else jnp.result_type(float)
