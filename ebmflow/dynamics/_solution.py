"""Result codes, the solution type shared by `flow` and `train`, and the one way results raise."""

import warnings

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

with warnings.catch_warnings():
    # Two inherited codes get wording for learning runs; equinox warns that it overrides their messages.
    warnings.filterwarnings("ignore", "Enumeration has duplicate incompatible values", UserWarning)

    class RESULTS(dfx.RESULTS):  # pyright: ignore
        """Outcome codes of flows, training runs and fixed-point refinements (one per batch member).

        Chained to diffrax's codes (which chain optimistix's and lineax's), as diffrax chains
        optimistix's: a solver's code is `RESULTS.promote`d unchanged, with its own message.
        """

        max_steps_reached = "max_steps reached before t1: raise max_steps, or loosen rtol/atol"
        nonfinite = (
            "parameters or the gradient became NaN or infinite: check the initial model, the target and the energy "
            "(with train: lower the learning rate)"
        )
        steady_state = "stopped at a steady state (||∇L|| <= steady_tol)"
        stalled = (
            "Levenberg–Marquardt stopped making progress, so ||∇L|| goes no lower near this point (the gradient "
            "runs along a nearly flat valley, or is at rounding level); flow longer or loosen tol"
        )


def result_codes(result: RESULTS) -> np.ndarray:
    """The integer codes of a (batched) result, as stored in results files."""
    return np.asarray(result._value)


def result_names() -> list[str]:
    """The name of every code, indexed by code."""
    names = [""] * len(RESULTS)
    for name, item in RESULTS._name_to_item.items():
        names[int(item._value)] = name
    return names


def code_message(code: int) -> str:
    """The message of an integer code; ``"successful"`` for success."""
    return RESULTS._index_to_message[int(code)] or "successful"


def describe(result: RESULTS) -> list[str]:
    """The message of every entry of a (batched) result, flattened."""
    return [code_message(c) for c in result_codes(result).reshape(-1)]


def raise_if_failed(solution, throw: bool):
    """``solution`` (with ``.ok`` and ``.message``), or, when ``throw``, an error naming its first failure.

    Inside jit the error is an `eqx.error_if` on the returned solution.
    """
    if not throw:
        return solution
    if isinstance(solution.ok, jax.core.Tracer):
        return eqx.error_if(solution, ~solution.ok, "ebmflow: the run failed; pass throw=False to inspect the result")
    failed = ~np.atleast_1d(np.asarray(solution.ok))
    if failed.any():
        message = np.atleast_1d(solution.message)[failed][0]
        raise RuntimeError(f"ebmflow: {message} (pass throw=False to keep partial results)")
    return solution


class FlowSolution(eqx.Module):
    """A learning trajectory sampled at save times (leading batch axes for batches).

    Fields (``T`` save times, ``n`` spins; per-order arrays are indexed by order ``k = 0..n``):

    - ``ts (T,)``: save times (for `train`, the step number times ``time_per_step``);
    - ``models``: the model with every parameter stacked over the save times;
    - ``kl (T,)`` in nats; ``grad_norm (T,)``: ``||∇_θ L||`` of the objective followed;
    - ``moment_mismatch (T, n+1)``: ``||m^θ_k - m^D_k||``; ``initial_mismatch (n+1,)`` at ``t = 0``;
    - ``coupling_error (T, n+1)``: ``||J_k - J*_k||``; ``coupling_norms (T, n+1)``: ``||J_k||``;
      ``target_coupling_norms (n+1,)``: ``||J*_k||`` (order 0, the gauge, is left out: 0);
    - ``t_final``: the time reached; ``result``: a `RESULTS` code; ``stats``: steps taken
      (``num_steps`` attempted, ``num_accepted_steps``, ``num_rejected_steps``) and
      ``gradient_evaluations``, ``hessian_evaluations`` (-1 where the solver's count is unknown).

    Entries after a failure are NaN; after a steady-state stop they repeat the final state.
    """

    ts: Float[Array, " T"]
    models: eqx.Module
    kl: Float[Array, " T"]
    grad_norm: Float[Array, " T"]
    moment_mismatch: Float[Array, "T k"]
    coupling_error: Float[Array, "T k"]
    coupling_norms: Float[Array, "T k"]
    initial_mismatch: Float[Array, " k"]
    target_coupling_norms: Float[Array, " k"]
    t_final: Float[Array, ""]
    result: RESULTS
    stats: dict[str, Int[Array, ""]]

    @property
    def delta(self) -> Float[Array, "T k"]:
        """Relative moment mismatch ``Δ_k(t) = ||m^θ_k(t) - m^D_k|| / ||m^θ_k(0) - m^D_k||`` (THEORY §6).

        NaN for orders whose initial mismatch is zero (order 0 always).
        """
        initial = self.initial_mismatch[..., None, :]
        return jnp.where(initial > 0, self.moment_mismatch / jnp.where(initial > 0, initial, 1), jnp.nan)

    @property
    def relative_coupling_error(self) -> Float[Array, "T k"]:
        """``||J_k(t) - J*_k|| / ||J*_k||``; NaN where the target has no order-k couplings."""
        norms = self.target_coupling_norms[..., None, :]
        return jnp.where(norms > 0, self.coupling_error / jnp.where(norms > 0, norms, 1), jnp.nan)

    def learning_times(self, alpha: float = 0.1) -> Float[Array, " k"]:
        """``τ_k(α)``: first time with ``Δ_k(t) <= α``, per order (shape ``(..., n+1)``).

        Interpolated linearly in ``log Δ`` between the bracketing save times
        (in log time when both are positive). ``inf`` if never reached; NaN
        where ``Δ_k`` is undefined.
        """
        return _first_passage(self.ts, self.delta, alpha)

    @property
    def ok(self) -> jax.Array:
        """True where the run succeeded (reached t1 or a steady state)."""
        return (self.result == RESULTS.successful) | (self.result == RESULTS.steady_state)

    @property
    def message(self) -> str | list[str]:
        """Human-readable outcome; a list for a batch."""
        times = np.asarray(self.t_final).reshape(-1)
        texts = [f"{text}: reached t = {t:.6g}" if text == "successful" else f"{text} (at t = {t:.6g})"
                 for text, t in zip(describe(self.result), times)]
        return texts[0] if np.ndim(result_codes(self.result)) == 0 else texts


def _first_passage(ts, delta, alpha):
    """Vectorised first passage of ``delta[..., T, k]`` below ``alpha`` on the grid ``ts[..., T]``."""

    def one(t, d):  # t (T,), d (T,)
        below = d <= alpha
        i = jnp.argmax(below)
        hit = below[i]
        j = jnp.maximum(i - 1, 0)
        log_d0, log_d1 = jnp.log(d[j]), jnp.log(d[i])
        frac = jnp.where((i > 0) & (log_d0 > log_d1), (log_d0 - jnp.log(alpha)) / (log_d0 - log_d1), 1.0)
        frac = jnp.clip(frac, 0, 1)
        log_time = t[j] > 0
        t_log = jnp.exp(jnp.log(jnp.where(log_time, t[j], 1)) * (1 - frac) + jnp.log(jnp.maximum(t[i], 1e-300)) * frac)
        t_hit = jnp.where(i == 0, t[0], jnp.where(log_time, t_log, t[j] + frac * (t[i] - t[j])))
        undefined = jnp.all(jnp.isnan(d))
        return jnp.where(undefined, jnp.nan, jnp.where(hit, t_hit, jnp.inf))

    per_order = jax.vmap(one, in_axes=(None, -1), out_axes=-1)
    for _ in range(ts.ndim - 1):
        per_order = jax.vmap(per_order)
    return per_order(ts, delta)
