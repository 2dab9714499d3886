"""The training objective on flat parameters, and the observables recorded along a trajectory."""

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from ._tree import flatten
from .effective._couplings import values_couplings
from .exact._divergence import nll_and_grad
from .exact._hessian import check_hessian_fits, nll_hessian
from .exact._sums import all_neg_energies, streamed_log_partition
from .exact._target import Target


class Objective:
    """``L(θ) = KL(p_D || p_θ) + (penalty/2) ||θ||²`` on the flat parameter vector of ``model``.

    Built outside jit from a model's structure (its space sets the chunk plan); the
    target's probabilities and the penalty are passed at call time, so one compiled
    solve serves all same-shape problems. `gradient` carries its own derivative: its
    Jacobian in θ (``jax.jacfwd``, as in `Rodas4` or an implicit solver's Newton matrix)
    is `hessian`, assembled from per-state gradients rather than by differentiating the
    gradient ``P`` times. Inputs are checked by the public functions that build it.
    """

    def __init__(self, model):
        self.theta0, self.unflatten = flatten(model)
        self.space = model.space
        self.gradient = jax.custom_jvp(self._gradient)
        self.gradient.defjvp(self._gradient_jvp, symbolic_zeros=True)

    def __call__(self, theta, probs, penalty):
        """The objective up to the constant ``-H(p_D)`` (which does not move the flow)."""
        log_z, data = streamed_log_partition(self.unflatten(theta), probs)
        return log_z - data + 0.5 * penalty * theta @ theta

    def _gradient(self, theta, probs, penalty):
        """``∇L(θ)`` from the one-pass value-and-gradient."""
        _, grad = nll_and_grad(self.unflatten(theta), probs)
        return flatten(grad)[0] + penalty * theta

    def _gradient_jvp(self, primals, tangents):
        """Forward derivative of `gradient`: ``∇²L dθ``, plus the (linear) response to the target and penalty."""
        theta, probs, penalty = primals
        d_theta, d_probs, d_penalty = tangents
        grad = self._gradient(theta, probs, penalty)
        tangent = jnp.zeros_like(grad)
        if not isinstance(d_theta, SymbolicZero):
            tangent = tangent + self.hessian(theta, probs, penalty) @ d_theta
        if not isinstance(d_probs, SymbolicZero):
            tangent = tangent + jax.jvp(lambda q: self._gradient(theta, q, penalty), (probs,), (d_probs,))[1]
        if not isinstance(d_penalty, SymbolicZero):
            tangent = tangent + d_penalty * theta
        return grad, tangent

    def hessian(self, theta, probs, penalty):
        """``∇²L(θ)``, ``(P, P)``: covariance of per-state gradients plus curvature (`ebmflow.exact._hessian`)."""
        model = self.unflatten(theta)
        check_hessian_fits(model, "the Hessian")
        return nll_hessian(model, probs) + penalty * jnp.eye(theta.shape[0], dtype=theta.dtype)

    def observe(self, thetas, target: Target, penalty):
        """Observables at each row of ``thetas (T, P)``, one state at a time (memory O(q**n)).

        Returns a dict of ``kl (T,)``, ``grad_norm (T,)`` (of the full objective),
        ``moment_mismatch (T, n+1)`` = ``||m^θ_k - m^D_k||``, ``coupling_error (T, n+1)``
        = ``||J_k - J*_k||`` and ``coupling_norms (T, n+1)`` = ``||J_k||`` (order 0, the gauge, is 0).
        """
        space = self.space
        m_data = space.transform(target.probs)
        j_target = values_couplings(space, target.log_probs).at[0].set(0)

        def one(theta):
            # m_0 = 1 for every distribution: its mismatch is 0 exactly, not rounding (Δ_0 is then NaN).
            x = all_neg_energies(self.unflatten(theta))
            log_p = x - jax.nn.logsumexp(x)
            j = values_couplings(space, x).at[0].set(0)
            return dict(
                kl=target.probs @ (target.log_probs - log_p),
                grad_norm=jnp.linalg.norm(self.gradient(theta, target.probs, penalty)),
                moment_mismatch=space.order_norms((space.transform(jnp.exp(log_p)) - m_data).at[0].set(0)),
                coupling_error=space.order_norms(j - j_target),
                coupling_norms=space.order_norms(j),
            )

        return jax.lax.map(one, thetas)
