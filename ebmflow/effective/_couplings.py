"""The effective model of an energy or a target: couplings of every order, and moments (THEORY §2, §9).

Both are vectors of length ``q**n`` in the basis of the space (for spins the Walsh
basis, indexed by subset bitmask): ``J = q**-n transform(F)`` for ``F = -E_θ`` (a
model) or ``F = ln p_D`` (a target), and ``m = transform(p)``. ``J[0] = J_∅`` is a
gauge (absorbed by ``ln Z``) and is never compared; ``m[0] = 1``.
"""

import equinox as eqx
import jax
from jaxtyping import Array, Float

from ..energies._base import AbstractEnergy, check_energy
from ..exact._sums import all_neg_energies, check_sum, finite
from ..exact._target import Target


def values_couplings(space, values: Float[Array, "... states"]) -> Float[Array, "... states"]:
    """The couplings of a function of the state given by its values: ``q**-n transform(values)``."""
    return space.transform(values) / space.size


@eqx.filter_jit
def model_couplings(model):
    """The couplings of a model (no checks: `couplings` is the public form)."""
    return values_couplings(model.space, all_neg_energies(model))


@eqx.filter_jit
def _target_couplings(target):
    return values_couplings(target.space, target.log_probs)


@eqx.filter_jit
def _model_moments(model):
    return model.space.transform(jax.nn.softmax(all_neg_energies(model)))


@eqx.filter_jit
def _target_moments(target):
    return target.space.transform(target.probs)


def couplings(model_or_target: AbstractEnergy | Target) -> Float[Array, " states"]:
    """Couplings ``J_k`` of every order in the basis of the space (spins: Walsh couplings ``J_S`` by bitmask).

    For a model ``J = q**-n transform(-E_θ)``; for a target ``J* = q**-n transform(ln p_D)``.
    ``J[0] = J_∅`` is a gauge (absorbed by ``ln Z``) and is never compared.
    """
    if isinstance(model_or_target, Target):
        return _target_couplings(model_or_target)
    check_sum(check_energy(model_or_target), 2, "couplings")
    return finite(model_couplings(model_or_target), model_or_target, "couplings")


def moments(model_or_target: AbstractEnergy | Target) -> Float[Array, " states"]:
    """All moments ``m_k = <φ_k>`` in the basis of the space (``m_0 = 1``); for spins ``m_S = <χ_S> = fwht(p)``."""
    if isinstance(model_or_target, Target):
        return _target_moments(model_or_target)
    check_sum(check_energy(model_or_target), 2, "moments")
    return finite(_model_moments(model_or_target), model_or_target, "moments")
