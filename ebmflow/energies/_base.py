"""The abstract energy every model derives from."""

import abc
import inspect
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._tree import flatten, model_dtype, parameters
from ..space import AbstractStateSpace, Spins


def _declared(cls) -> set[str]:
    """Names annotated (fields) or defined anywhere in ``cls``'s MRO, below `AbstractEnergy`."""
    names = set()
    for c in cls.__mro__:
        if c is AbstractEnergy or c is eqx.Module:
            break
        names |= set(inspect.get_annotations(c)) | set(vars(c))
    return names


class AbstractEnergy(eqx.Module):
    """An energy ``E_θ(v)`` over the states of a space, ``p_θ(v) = exp(-E_θ(v)) / Z``.

    Subclasses define their state space and `energy` for **one** state, the
    definition of the model. A user-defined energy needs only these two members::

        class Pairwise(ebmflow.AbstractEnergy):
            space: ebmflow.Spins
            theta: jax.Array

            def energy(self, s):
                return -self.theta * jnp.sum(s[:-1] * s[1:])

        model = Pairwise(ebmflow.Spins(5), jnp.array(0.5))

    ``space`` is a field holding the state space (`Spins`, ...; it sets the chunk
    plan of exact sums, `ebmflow.with_chunk_size`). Over spins a static int field
    ``n: int = eqx.field(static=True)`` may stand instead of ``space``, which is then
    ``Spins(n)`` with the default plan. Either way ``model.n`` and ``model.space`` exist.

    Exact sums split the sites into low digits ``v_lo`` (sites ``0..k-1``) and high
    digits ``v_hi`` (the rest) and evaluate every low-digit state against one high-digit
    state at a time, through a pair of methods: `lo_features` computes once per sum
    what depends on the low digits alone, and `neg_energy_chunk` finishes ``-E`` from
    it for each high-digit state. The defaults vmap `energy`; a model overrides both
    together to move work out of the loop (an RBM computes ``W_lo s_lo`` once, so
    each chunk adds instead of multiplying; THEORY §8). An override must hold for
    every split ``k = 0..n`` (``v_lo`` of shape ``(1, 0)`` at ``k = 0``, ``v_hi`` of
    shape ``(0,)`` at ``k = n``); tests check the pair against `energy`.
    """

    #: True when ``-E`` is linear in the parameters (an exponential family): `curvature` is then zero
    #: and exact Hessians skip it.
    linear_in_parameters: ClassVar[bool] = False
    #: The number of axes of each named parameter of one model, for energies that flatten or sum their
    #: parameters (a batch's energy would otherwise be a scalar too): `check_ranks` refuses others.
    parameter_ranks: ClassVar[dict[str, int]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Whichever of `space` and `n` a subclass does not declare is derived from the other.
        declared = _declared(cls)
        if "space" not in declared and "n" in declared:
            cls.space = property(lambda self: Spins(self.n), doc="``Spins(n)``, the default chunk plan.")
        if "n" not in declared and "space" in declared:
            cls.n = property(lambda self: self.space.n, doc="The number of sites.")

    @abc.abstractmethod
    def energy(self, s: Array) -> Float[Array, ""]:
        """Energy of one state ``s`` of shape ``(n,)`` (spins: entries ±1 in the model's dtype)."""

    def lo_features(self, s_lo: Array) -> PyTree[Array]:
        """What `neg_energy_chunk` needs of the ``l`` low-digit states ``s_lo`` ``(l, k)`` (sites ``0..k-1``).

        Any pytree of arrays, computed once per exact sum; gradients flow through its
        floating arrays to the parameters. This default returns ``s_lo`` itself.
        """
        return s_lo

    def neg_energy_chunk(self, features: PyTree[Array], s_hi: Array) -> Float[Array, " l"]:
        """``-E`` of the ``l`` states ``(s_lo[j], s_hi)``, from ``features = self.lo_features(s_lo)``.

        ``s_hi`` holds sites ``k..n-1`` of one state. This default vmaps `energy`.
        """
        return -jax.vmap(self.energy)(join_states(features, s_hi))

    def curvature(self, weights: Float[Array, " l"], s: Array) -> Float[Array, "P P"]:
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
        """Numbers evaluated per state (sizes memory and time estimates); hidden units for an RBM."""
        return self.n


def join_states(s_lo: Array, s_hi: Array) -> Array:
    """The ``l`` states ``(s_lo[j], s_hi)``: every low-digit state with one high-digit state, index order."""
    return jnp.concatenate([s_lo, jnp.broadcast_to(s_hi, (s_lo.shape[0], s_hi.shape[0]))], axis=-1)


_ENERGY_OUTPUTS: dict = {}


def check_ranks(model, ranks: dict[str, int]) -> None:
    """Raise if a parameter has another number of axes than one model's: a batch given as one model.

    `energy_output` calls it with the model's `parameter_ranks` (declared by energies that flatten
    or sum their parameters), so that a batch's energy of one state fails instead of coming out a
    scalar, which would pass for one model.
    """
    for name, rank in ranks.items():
        ndim = jnp.ndim(getattr(model, name))
        if ndim != rank:
            raise ValueError(f"{type(model).__name__}.{name} has {ndim} axes where one model's has {rank} (a batch of "
                             "models goes to flow_batch or train_batch)")


def energy_output(model) -> jax.ShapeDtypeStruct:
    """Shape and dtype of ``model.energy`` of one state, traced once per model structure (not per call)."""
    check_ranks(model, model.parameter_ranks)
    leaves, treedef = jax.tree_util.tree_flatten(parameters(model))
    key = (type(model), treedef, tuple((leaf.shape, jnp.dtype(leaf.dtype).name) for leaf in leaves))
    if key not in _ENERGY_OUTPUTS:
        space = model.space
        state = jax.ShapeDtypeStruct((space.n,), space.state_dtype(model_dtype(model)))
        _ENERGY_OUTPUTS[key] = jax.eval_shape(lambda m, s: m.energy(s), model, state)
    return _ENERGY_OUTPUTS[key]


def check_energy(model) -> AbstractEnergy:
    """Check a model once at the public boundary.

    Its type and space; parameters of one floating dtype, float32 or float64; ``energy`` of one
    state returning a real scalar (traced once per model structure); and, for concrete
    parameters, no NaN or infinite values.
    """
    if not isinstance(model, AbstractEnergy):
        raise TypeError(f"expected an energy model (a subclass of ebmflow.AbstractEnergy); got {type(model).__name__}")
    name = type(model).__name__
    if not isinstance(getattr(model, "space", None), AbstractStateSpace):
        raise TypeError(
            f"{name} has no state space: declare a field `space` (e.g. ebmflow.Spins(n)) or, "
            "over spins, a static int field `n`"
        )
    dtypes = sorted({jnp.dtype(leaf.dtype).name for leaf in jax.tree_util.tree_leaves(parameters(model))})
    if len(dtypes) > 1 or (dtypes and dtypes[0] not in ("float32", "float64")):
        raise TypeError(
            f"{name}'s parameters must all be float32 or all float64 (ebmflow computes in one of them); got "
            f"{', '.join(dtypes)}: cast them, e.g. ebmflow.cast_parameters(model, jnp.float64)"
        )
    out = energy_output(model)
    if out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(
            f"{name}.energy must return a real scalar for one state of shape ({model.space.n},); it returns "
            f"shape {out.shape} and dtype {out.dtype}" + (" (a batch of models goes to flow_batch or train_batch)"
                                                         if out.shape else "")
        )
    for path, leaf in jax.tree_util.tree_leaves_with_path(parameters(model)):
        if not isinstance(leaf, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError(
                f"model parameter {type(model).__name__}{jax.tree_util.keystr(path)} has NaN or infinite entries; "
                "parameters must be finite"
            )
    return model
