"""Refining near-stationary points of the flow."""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx

from .._exact import check_pair
from ..energies._base import cast_parameters
from ..flow._objective import Objective


@dataclasses.dataclass(frozen=True)
class FixedPoint:
    """A refined point: ``model``, its ``grad_norm`` ``||∇L||``, ``steps`` taken, ``converged`` and a ``message``."""

    model: eqx.Module
    grad_norm: float
    steps: int
    converged: bool
    message: str


@eqx.filter_jit
def _refine(model, probs, penalty, rtol, atol, max_steps, chunk_size):
    objective = Objective(model, chunk_size)
    solver = optx.LevenbergMarquardt(rtol=rtol, atol=atol)
    sol = optx.least_squares(
        lambda theta, _: objective.gradient(theta, probs, penalty), solver, objective.theta0,
        max_steps=max_steps, throw=False,
    )
    grad = objective.gradient(sol.value, probs, penalty)
    return objective.unflatten(sol.value), jnp.linalg.norm(grad), sol.stats["num_steps"], sol.result


def fixed_point(
    model, target, *, tol: float = 1e-10, penalty: float = 0.0, max_steps: int = 256, rtol: float = 1e-12,
    atol: float = 1e-14, chunk_size: int | None = None,
) -> FixedPoint:
    """Refine ``model`` to a stationary point of ``L = KL + (penalty/2)||θ||²``, ``||∇L|| <= tol``.

    Levenberg–Marquardt (optimistix) on the residual ``∇L(θ) = 0``: its damping
    keeps the steps finite where the Hessian is singular, as at every
    over-parametrised fixed point. Start near a stationary point (e.g. the end of
    a flow); failure comes back as ``converged=False`` with a message. It runs in float64,
    and a float32 model comes back as float64: float32 rounding alone leaves ``||∇L|| ~ 1e-7``.
    ``chunk_size``: states per chunk in the streamed sums (as in `ebmflow.kl`).
    """
    check_pair(model, target)
    model, probs = cast_parameters(model, jnp.float64), target.probs.astype(jnp.float64)
    refined, norm, steps, result = _refine(
        model, probs, jnp.asarray(penalty, jnp.float64), rtol, atol, max_steps, chunk_size
    )
    norm, steps = float(norm), int(steps)
    converged = norm <= tol
    if converged:
        message = f"converged: ||∇L|| = {norm:.3g} <= tol = {tol:.3g} after {steps} Levenberg–Marquardt steps"
    else:
        message = f"not converged: ||∇L|| = {norm:.3g} > tol = {tol:.3g} after {steps} steps: " + _why(result)
    return FixedPoint(refined, norm, steps, converged, message)


def _why(result) -> str:
    """What stopped Levenberg–Marquardt short of ``tol``, and what to try."""
    if result == optx.RESULTS.successful:  # its own step criterion (rtol/atol) ended it
        return (
            "Levenberg–Marquardt stopped making progress, so ||∇L|| goes no lower near this point (the gradient "
            "runs along a nearly flat valley, or is at rounding level); flow longer or loosen tol"
        )
    if result == optx.RESULTS.nonlinear_max_steps_reached:
        return "max_steps reached; raise max_steps or start closer to a stationary point (flow longer)"
    return f"{optx.RESULTS[result]}; start closer to a stationary point (flow longer)"
