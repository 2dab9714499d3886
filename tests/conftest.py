"""Test configuration and the registry fixture.

float64 is turned on once here; tests never toggle it. XLA's optimisation passes
are turned off: the suite compiles hundreds of tiny programs, and compiling,
not running, dominates its time (about 3x faster this way). Set
``EBMFLOW_TEST_XLA_OPTIMIZE=1`` to run the suite on fully optimised programs.
"""

import functools
import os

import equinox as eqx
import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 4)  # for the sharded paths (test_sharding.py); computations default to one
if os.environ.get("EBMFLOW_TEST_XLA_OPTIMIZE", "0") != "1":
    jax.config.update("jax_disable_most_optimizations", True)

import reference as ref
from models import MODELS, exact_bundle, make, random_probs

import ebmflow


class Case:
    """One registry model at n = 5 with a random target: ebmflow's results next to the reference's."""

    def __init__(self, factory):
        self.factory = factory
        self.model = make(factory)
        self.p_data = random_probs(self.model.n, seed=1)
        self.target = ebmflow.Target.from_probs(self.p_data)
        # A fresh compiled function per model, which must not retrace for new parameter values.
        self.bundle = eqx.filter_jit(eqx.debug.assert_max_traces(exact_bundle, max_traces=1))
        self.got = jax.tree_util.tree_map(np.asarray, self.bundle(self.model, self.target))
        theta, self.unflatten = ebmflow.flatten(self.model)
        self.theta = np.asarray(theta)
        self.neg_e = ref.neg_energies(self.model)

    @functools.cached_property
    def finite_differences(self):
        """Central differences over the flat parameters of ``[KL, J_S for S ≠ ∅]``, all from the reference."""

        def f(theta):
            neg_e = ref.neg_energies(self.unflatten(theta))
            return np.concatenate([[ref.kl(neg_e, self.p_data)], ref.couplings_from_neg_energies(neg_e)[1:]])

        d = ref.central_difference(f, self.theta)
        return d[0], d[1:]  # (P,) gradient of KL, (2**n - 1, P) coupling Jacobian


@pytest.fixture(scope="session", params=MODELS)
def case(request):
    """Parametrises a test over the model registry; each model is built and evaluated once per session."""
    return Case(request.param)
