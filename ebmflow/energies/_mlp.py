"""Energies given by a multilayer perceptron."""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import positive_int, prng_key
from ..space import AbstractStateSpace, Spins
from ._base import AbstractEnergy

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
}


class MLPEnergy(AbstractEnergy):
    """``E(v) = MLP(x(v))``: dense layers of the given widths, a scalar output.

    ``x(v)`` is the space's `encode`ing of the state: the spins themselves (the default,
    ``Spins(n)`` with ``n`` the first layer's ``in_features``) or, over ``Potts(n, q)``, the
    one-hot colours (``in_features = n q``). ``layers`` are `equinox.nn.Linear`;
    ``activation`` names one of ``tanh, relu, gelu, silu, softplus, sigmoid`` and acts between layers.
    """

    space: AbstractStateSpace
    activation: str = eqx.field(static=True)
    layers: tuple[eqx.nn.Linear, ...]

    def __init__(self, layers: Sequence[eqx.nn.Linear], activation: str = "tanh", space=None):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        self.layers = tuple(layers)
        self.activation = activation
        if not self.layers:
            raise ValueError("MLPEnergy needs at least one layer")
        for k in range(1, len(self.layers)):
            if self.layers[k].in_features != self.layers[k - 1].out_features:
                raise ValueError(
                    f"layer {k} has in_features={self.layers[k].in_features} but layer {k - 1} has "
                    f"out_features={self.layers[k - 1].out_features}; consecutive widths must match"
                )
        if self.layers[-1].out_features != 1:
            raise ValueError(
                f"the last layer must have out_features=1 (the energy is a scalar); got {self.layers[-1].out_features}"
            )
        inputs = self.layers[0].in_features
        self.space = Spins(inputs) if space is None else space
        if not isinstance(self.space, AbstractStateSpace) or inputs != self.space.n * self.space.site_width:
            raise ValueError(f"the first layer has in_features={inputs}; over {space!r} it needs n·(numbers per "
                             "site): n for spins, n q for Potts colours (one-hot)")

    @classmethod
    def init(
        cls, key, n: int | AbstractStateSpace, widths: Sequence[int] = (32, 32), activation: str = "tanh",
        scale: float = 1.0, dtype=None,
    ) -> "MLPEnergy":
        """Weights i.i.d. ``N(0, scale²/fan_in)``, biases zero; ``n`` spins, or a space such as ``Potts(n, q)``."""
        dtype = dtype or jnp.result_type(float)
        space = n if isinstance(n, AbstractStateSpace) else Spins(n)
        sizes = [space.n * space.site_width, *(positive_int("widths entry", w) for w in widths), 1]
        keys = jax.random.split(prng_key(key), len(sizes) - 1)
        layers = []
        for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:]):
            layer = eqx.nn.Linear(fan_in, fan_out, key=k, dtype=dtype)
            weight = scale / fan_in**0.5 * jax.random.normal(k, (fan_out, fan_in), dtype)
            layers.append(eqx.tree_at(lambda lin: (lin.weight, lin.bias), layer, (weight, jnp.zeros(fan_out, dtype))))
        return cls(layers, activation, space)

    @property
    def width(self) -> int:
        return max(layer.out_features for layer in self.layers)

    def energy(self, s):
        act = ACTIVATIONS[self.activation]
        s = self.space.encode(s, self.layers[0].weight.dtype)
        for layer in self.layers[:-1]:
            s = act(layer(s))
        return self.layers[-1](s)[0]

    def lo_features(self, s_lo):
        # The first layer is linear: its low-bit part is computed once, (width, l), units first.
        first = self.layers[0]
        x = self.space.encode(s_lo, first.weight.dtype)
        return first.weight[:, : x.shape[1]] @ x.T + (0 if first.bias is None else first.bias[:, None])

    def neg_energy_chunk(self, features, s_hi):
        act = ACTIVATIONS[self.activation]
        x = self.space.encode(s_hi, self.layers[0].weight.dtype)
        h = features + (self.layers[0].weight[:, self.layers[0].in_features - x.shape[0] :] @ x)[:, None]
        for layer in self.layers[1:]:
            h = layer.weight @ act(h) + (0 if layer.bias is None else layer.bias[:, None])
        return -h[0]
