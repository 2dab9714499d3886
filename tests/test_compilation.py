"""Eager calls compile once per shape and dtype, and every public function works inside the user's jax.jit."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from models import random_probs, rbm

import ebmflow

EXACT = {"rtol": 0, "atol": 1e-10}
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """Collect the XLA compilations made inside the block (jax.monitoring's compile-duration events)."""
    events = []

    def listener(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def _calls(model, target):
    """Every public exact and effective-model function, as eager calls."""
    j = np.zeros(2**model.n)
    return {
        "neg_energies": lambda: ebmflow.neg_energies(model),
        "log_partition": lambda: ebmflow.log_partition(model),
        "log_probs": lambda: ebmflow.log_probs(model),
        "probs": lambda: ebmflow.probs(model),
        "nll": lambda: ebmflow.nll(model, target),
        "kl": lambda: ebmflow.kl(model, target),
        "kl_and_grad": lambda: ebmflow.kl_and_grad(model, target),
        "couplings(model)": lambda: ebmflow.couplings(model),
        "couplings(target)": lambda: ebmflow.couplings(target),
        "moments(model)": lambda: ebmflow.moments(model),
        "moments(target)": lambda: ebmflow.moments(target),
        "coupling_jacobian": lambda: ebmflow.coupling_jacobian(model),
        "tangent_kernel": lambda: ebmflow.tangent_kernel(model),
        "fwht": lambda: ebmflow.fwht(j),
        "order_norms": lambda: ebmflow.order_norms(j),
        "couplings_of_order": lambda: ebmflow.couplings_of_order(j, 2),
        "to_binary_basis": lambda: ebmflow.to_binary_basis(j),
        "from_binary_basis": lambda: ebmflow.from_binary_basis(j),
        "all_states": lambda: ebmflow.all_states(model.n),
    }


@pytest.mark.parametrize("chunk_size", [None, 8])
def test_repeated_eager_calls_compile_nothing(chunk_size):
    """A second call with new values of the same shapes and dtypes compiles nothing, function by function."""
    n = 6
    first = ebmflow.with_chunk_size(rbm(n, 3, seed=1), chunk_size)
    second = ebmflow.with_chunk_size(rbm(n, 3, seed=2), chunk_size)
    target_1 = ebmflow.Target.from_probs(random_probs(n, seed=1))
    target_2 = ebmflow.Target.from_probs(random_probs(n, seed=2))
    warm, again = _calls(first, target_1), _calls(second, target_2)
    for name in warm:
        jax.block_until_ready(warm[name]())
        with compilations() as events:
            jax.block_until_ready(again[name]())
        assert events == [], f"{name} compiled {len(events)} time(s) on a repeated call"


def test_the_counter_sees_compilations():
    """The listener does count: a new shape compiles."""
    with compilations() as events:
        ebmflow.log_partition(rbm(3, 2, seed=0))
    assert len(events) >= 1


def test_models_and_targets_closed_over_inside_a_users_jit():
    """Tracer probabilities and parameters pass the public boundary (checks skip values they cannot see)."""
    n = 4
    model = rbm(n, 3, seed=3)
    p = random_probs(n, seed=4)
    expected = ref.kl(ref.neg_energies(model), p)
    np.testing.assert_allclose(jax.jit(lambda q: ebmflow.kl(model, ebmflow.Target(q)))(p), expected, **EXACT)
    value, _ = jax.jit(lambda q: ebmflow.kl_and_grad(model, ebmflow.Target(q)))(p)
    np.testing.assert_allclose(value, expected, **EXACT)
    w = jnp.asarray(model.weights)
    traced = jax.jit(lambda w: ebmflow.log_partition(ebmflow.RBM(w, model.visible_bias, model.hidden_bias)))(w)
    np.testing.assert_allclose(traced, ref.log_partition(ref.neg_energies(model)), **EXACT)
    j = jax.jit(lambda q: ebmflow.couplings(ebmflow.Target(q)))(p)
    np.testing.assert_allclose(j, ref.couplings_from_neg_energies(np.log(p)), **EXACT)
