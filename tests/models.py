"""The registry of energy models every contract test runs over: adding a model is one line in `MODELS`.

Each entry is a factory ``(key, n, dtype) -> model``; `tests/reference.py` knows
the formula of every class here. Factories need ``n >= 5`` (`GIVEN_SUBSETS`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebmflow


class Pairwise(ebmflow.AbstractEnergy):
    """A user-defined energy, exactly as in the `AbstractEnergy` docstring."""

    space: ebmflow.Spins
    theta: jax.Array

    def energy(self, s):
        return -self.theta * jnp.sum(s[:-1] * s[1:])


GIVEN_SUBSETS = (0b00011, 0b00110, 0b10001, 0b01101, 0b11110, 0b10000, 0b11111)


def mlp(key, n, dtype):
    k_init, k_bias = jax.random.split(key)
    model = ebmflow.MLPEnergy.init(k_init, n, widths=(6, 4), activation="tanh", dtype=dtype)
    # init zeroes the biases; give them values so that the reference has to read them.
    keys = jax.random.split(k_bias, len(model.layers))
    biases = [0.3 * jax.random.normal(k, layer.bias.shape, dtype) for k, layer in zip(keys, model.layers)]
    return eqx.tree_at(lambda m: [layer.bias for layer in m.layers], model, biases)


MODELS = [
    pytest.param(lambda key, n, dtype: ebmflow.Ising.init(key, n, scale=0.5, dtype=dtype), id="ising"),
    pytest.param(lambda key, n, dtype: ebmflow.HigherOrderIsing.init(key, n, 3, scale=0.4, dtype=dtype), id="hoi3"),
    pytest.param(
        lambda key, n, dtype: ebmflow.HigherOrderIsing.init(key, n, scale=0.5, subsets=GIVEN_SUBSETS, dtype=dtype),
        id="hoi-given",
    ),
    pytest.param(
        lambda key, n, dtype: ebmflow.RBM.init(key, n, 3, 0.6, "spin", bias_scale=0.4, dtype=dtype), id="rbm-spin"
    ),
    pytest.param(
        lambda key, n, dtype: ebmflow.RBM.init(key, n, 3, 0.6, "bernoulli", bias_scale=0.4, dtype=dtype),
        id="rbm-bernoulli",
    ),
    pytest.param(mlp, id="mlp"),
    pytest.param(lambda key, n, dtype: ebmflow.WalshModel.init(key, n, scale=0.3, dtype=dtype), id="walsh"),
    pytest.param(
        lambda key, n, dtype: Pairwise(ebmflow.Spins(n), 0.5 * jax.random.normal(key, (), dtype)), id="user-pairwise"
    ),
]


def factory(model_id):
    """The registry factory with the given pytest id."""
    return next(param.values[0] for param in MODELS if param.id == model_id)


def make(factory, n=5, dtype=jnp.float64, seed=0):
    """The registry model ``factory`` builds from ``PRNGKey(seed)`` (jitted: eager initialisers compile op by op)."""
    return eqx.filter_jit(factory)(jax.random.PRNGKey(seed), n, dtype)


def rbm(n, n_hidden=3, hidden="spin", seed=0, scale=0.7, bias_scale=0.4):
    """An RBM with NumPy-drawn parameters (eager jax.random would compile a kernel per shape)."""
    rng = np.random.default_rng(seed)
    return ebmflow.RBM(
        scale * rng.normal(size=(n_hidden, n)), bias_scale * rng.normal(size=n),
        bias_scale * rng.normal(size=n_hidden), hidden,
    )


def random_probs(n, seed=0):
    """A strictly positive, correlated-looking distribution over 2**n states (NumPy float64)."""
    p = np.random.default_rng(seed).gamma(2.0, size=2**n) + 0.05
    return p / p.sum()


# States per chunk at n = 5: one (no low bits), 8 (3 low bits, 4 chunks); log_probs and couplings use the
# default 2**10 (a single chunk).
CHUNK_SIZES = (1, 8)


def param_dtype(model):
    return jnp.result_type(*jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array)))


def exact_bundle(model, target):
    """Everything the contract tests compare, from ebmflow; jit it once per model (compiling is the slow part)."""
    states = ebmflow.all_states(model.n, param_dtype(model))
    value, grad = ebmflow.kl_and_grad(model, target)
    return {
        "energy": jax.vmap(model.energy)(states),
        "neg_energies": [ebmflow.neg_energies(ebmflow.with_chunk_size(model, c)) for c in CHUNK_SIZES],
        "log_partition": ebmflow.log_partition(model),
        "kl_and_grad": (value, ebmflow.flatten(grad)[0]),
        "log_probs": ebmflow.log_probs(model),
        "couplings": ebmflow.couplings(model),
        "jacobian": ebmflow.coupling_jacobian(model),
    }
