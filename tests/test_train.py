"""Discrete training with optax on the exact gradient, against NumPy optimiser loops and the reference flow."""

import numpy as np
import optax
import pytest
import reference_flow as rf
from models import random_probs, rbm

import ebmflow
from ebmflow.dynamics import save_steps

N = 4
EXACT = {"rtol": 0, "atol": 1e-10}


@pytest.fixture(scope="module")
def problem():
    """An RBM (n = 4, 3 hidden units) and a random target, with the NumPy problem and its flow at t = 1, 2."""
    model = rbm(N, 3, seed=1, scale=0.5)
    p_data = random_probs(N, seed=1)
    numpy_problem = rf.Problem(model, p_data)
    return model, ebmflow.Target.from_probs(p_data), numpy_problem, numpy_problem.flow(np.array([0.0, 1.0, 2.0]))


def saved(sol, i):
    return rf.pack(rf.params(sol.models, i))


def check_observables(sol, problem, steps, thetas):
    """The solution's parameters are the NumPy loop's; its observables are those of the saved parameters."""
    for i, step in enumerate(steps):
        np.testing.assert_allclose(saved(sol, i), thetas[step], **EXACT)
        expected = rf.observables(problem.neg_energies(saved(sol, i)), problem.p_data)
        assert float(sol.kl[i]) == pytest.approx(expected["kl"], abs=1e-10)
        assert float(sol.grad_norm[i]) == pytest.approx(np.linalg.norm(problem.grad(saved(sol, i))), abs=1e-10)
        for name in ("moment_mismatch", "coupling_error", "coupling_norms"):
            np.testing.assert_allclose(getattr(sol, name)[i], expected[name], **EXACT, err_msg=name)


def test_sgd_is_the_euler_scheme_of_the_flow(problem):
    """θ_{k+1} = θ_k - η ∇L(θ_k) tracks θ(kη) with a global error O(η): halving η halves it."""
    model, target, numpy_problem, flow = problem
    errors = []
    for lr in (0.02, 0.01):
        steps = round(2.0 / lr)
        at = [0, steps // 2, steps]
        sol = ebmflow.train(model, target, optax.sgd(lr), steps, save_at=at, time_per_step=lr)
        assert sol.result == ebmflow.RESULTS.successful
        np.testing.assert_allclose(sol.ts, [0.0, 1.0, 2.0], rtol=1e-15)
        assert int(sol.stats["num_steps"]) == steps and int(sol.stats["gradient_evaluations"]) == steps
        check_observables(sol, numpy_problem, at, rf.sgd(numpy_problem, lr, steps))
        errors.append([np.linalg.norm(saved(sol, i) - flow[i]) for i in (1, 2)])
    errors = np.array(errors)
    assert np.all(errors[1] > 0)
    # Euler: e(η) = C η + O(η²); at these η the O(η²) term moves the ratio by a few percent.
    np.testing.assert_allclose(errors[0] / errors[1], 2.0, rtol=0.05)


@pytest.mark.parametrize(
    "optimizer, numpy_loop",
    [
        (optax.sgd(0.05, momentum=0.9), lambda p, steps: rf.sgd(p, 0.05, steps, momentum=0.9)),
        (optax.adam(0.02), lambda p, steps: rf.adam(p, 0.02, steps)),
    ],
    ids=["momentum", "adam"],
)
def test_optimizers_match_numpy_loops(problem, optimizer, numpy_loop):
    model, target, numpy_problem, _ = problem
    steps, at = 60, [0, 1, 2, 7, 30, 60]
    sol = ebmflow.train(model, target, optimizer, steps, save_at=at)
    assert bool(sol.ok)
    np.testing.assert_array_equal(sol.ts, at)  # time_per_step = 1: ts are step numbers
    check_observables(sol, numpy_problem, at, numpy_loop(numpy_problem, steps))
    assert float(sol.kl[-1]) < float(sol.kl[0])


def test_default_save_steps():
    at = save_steps(1000, 61)
    assert at[0] == 0 and at[-1] == 1000 and np.all(np.diff(at) > 0) and at.dtype.kind == "i"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be a positive int; got 0"),
        (dict(steps=10.0), "steps must be a positive int; got 10.0"),
        (dict(steps=10, save_at=[0, 5, 11]), r"save_at must be increasing step numbers in \[0, steps=10\]"),
        (dict(steps=10, save_at=[0, 5, 5]), "save_at must be increasing step numbers"),
        (dict(steps=10, save_at=[-1, 5]), "save_at must be increasing step numbers"),
        (dict(steps=10, save_at=[]), "save_at must be increasing step numbers"),
        (dict(steps=10, num_saves=0), "num_saves must be a positive int; got 0"),
    ],
)
def test_bad_arguments(problem, kwargs, match):
    model, target, _, _ = problem
    with pytest.raises(ValueError, match=match):
        ebmflow.train(model, target, optax.sgd(0.1), **kwargs)
