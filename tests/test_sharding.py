"""Exact sums, Hessians, couplings and batches split over several host CPU devices equal the one-device results.

conftest.py asks JAX for 4 CPU devices; the sharded paths run on meshes of 2, 3 and 4 of them
(3 does not divide the number of chunks, so the last device's run is padded).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from models import random_probs, rbm

import ebmflow
from ebmflow._tree import cast_parameters, take
from ebmflow.dynamics._solution import result_codes

SAME = {"rtol": 1e-12, "atol": 1e-13}  # the same sums in another order (float64)


def mesh(devices: int, axis: str = "states") -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.asarray(jax.devices()[:devices]), (axis,))


def test_four_devices_are_there():
    assert len(jax.devices()) >= 4


@eqx.filter_jit
def _everything(model, target):
    value, grad = ebmflow.kl_and_grad(model, target)
    return dict(
        log_partition=ebmflow.log_partition(model), kl=ebmflow.kl(model, target), kl_and_grad=(value, grad),
        autodiff=eqx.filter_grad(lambda m: ebmflow.kl(m, target))(model), neg_energies=ebmflow.neg_energies(model),
        couplings=ebmflow.couplings(model), moments=ebmflow.moments(target), hessian=ebmflow.hessian(model, target),
        jacobian=ebmflow.coupling_jacobian(model),
    )


@pytest.mark.parametrize("devices", [2, 3, 4])
def test_sharded_exact_quantities_equal_one_device(devices):
    model = ebmflow.with_chunk_size(rbm(8, 3, seed=1), 8)  # 32 chunks
    target = ebmflow.Target.from_probs(random_probs(8, seed=2))
    one = _everything(model, target)
    many = _everything(ebmflow.sharded(model, mesh(devices)), ebmflow.sharded(target, mesh(devices)))
    for name in one:
        for a, b in zip(jax.tree.leaves(many[name]), jax.tree.leaves(one[name])):
            np.testing.assert_allclose(a, b, **SAME, err_msg=name)


def test_sharded_potts_sums_and_float32():
    model = ebmflow.with_chunk_size(ebmflow.PottsRBM.init(jax.random.key(0), 4, 3, 3, scale=0.5), 3)  # 27 chunks
    target = ebmflow.Target.from_model(ebmflow.targets.random_potts(jax.random.key(1), 4, 3, {1: 0.3, 2: 0.2}))
    sharded = ebmflow.sharded(model, mesh(2))
    np.testing.assert_allclose(ebmflow.kl_and_grad(sharded, target)[0], ebmflow.kl_and_grad(model, target)[0], **SAME)
    m32 = cast_parameters(model, jnp.float32)
    t32 = target.astype(jnp.float32)
    value32 = ebmflow.kl(ebmflow.sharded(m32, mesh(4)), t32)
    assert value32.dtype == jnp.float32
    np.testing.assert_allclose(value32, ebmflow.kl(m32, t32), rtol=1e-6)  # float32: the order of the sums differs


def test_sharded_flow_and_budgets_per_device():
    model, target = rbm(6, 2, seed=3, scale=0.2), ebmflow.Target.from_probs(random_probs(6, seed=4))
    one = ebmflow.flow(ebmflow.with_chunk_size(model, 4), target, 3.0, num_saves=4)
    many = ebmflow.flow(ebmflow.sharded(ebmflow.with_chunk_size(model, 4), mesh(4)), target, 3.0, num_saves=4)
    np.testing.assert_allclose(many.kl, one.kl, **SAME)
    assert int(many.stats["num_steps"]) == int(one.stats["num_steps"])
    ebmflow.set_state_budget(2**8)
    try:
        big = ebmflow.Ising(np.zeros(10), np.zeros(45))
        with pytest.raises(ebmflow.ComputeBudgetError, match=r"per device \(4 devices\) sums over 512 states"):
            ebmflow.log_partition(ebmflow.sharded(ebmflow.Ising(np.zeros(11), np.zeros(55)), mesh(4)))
        np.testing.assert_allclose(ebmflow.log_partition(ebmflow.sharded(big, mesh(4))), 10 * np.log(2), rtol=1e-14)
    finally:
        ebmflow.set_state_budget(None)


def test_sharded_batches_equal_vmapped_batches():
    target = ebmflow.Target.from_probs(random_probs(5, seed=5))
    keys = jax.random.split(jax.random.key(6), 5)
    models = eqx.filter_vmap(lambda k: ebmflow.RBM.init(k, 5, 3, scale=0.3))(keys)
    one = ebmflow.flow_batch(models, target, 4.0, num_saves=5)
    many = ebmflow.flow_batch(models, target, 4.0, num_saves=5, mesh=mesh(2, "batch"))
    np.testing.assert_allclose(many.kl, one.kl, **SAME)
    np.testing.assert_array_equal(result_codes(many.result), result_codes(one.result))
    trained = ebmflow.train_batch(models, target, optax.sgd(0.1), 20, save_at=[0, 10, 20], mesh=mesh(3, "batch"))
    for i in (0, 4):
        single = ebmflow.train(take(models, i), target, optax.sgd(0.1), 20, save_at=[0, 10, 20])
        np.testing.assert_allclose(trained.kl[i], single.kl, **SAME)
    with pytest.raises(ValueError, match=r"mesh must be a jax.sharding.Mesh with one axis"):
        ebmflow.flow_batch(models, target, 4.0, mesh="all")
