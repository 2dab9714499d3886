"""ebmflow: exact learning dynamics of energy-based models over discrete variables.

Layers, each importing only from those before it: ``space`` (states, chunk plans,
the basis of the effective model) → ``energies`` → ``exact`` (the streamed-reduction
engine, exact sums, targets) → ``effective`` (couplings, moments, Jacobians) →
objective → ``dynamics`` (flows, training) → ``analysis`` (fixed points, stability)
→ ``experiments`` → ``io`` → ``cli``. Everything a user needs is re-exported here.

Importing ebmflow turns on JAX's float64 (analysis needs it); set the
environment variable ``EBMFLOW_X64=0`` before import to keep JAX's float32 default.
"""

import importlib.metadata
import os

import jax

if os.environ.get("EBMFLOW_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)

from . import analysis as analysis, experiments as experiments, io as io, targets as targets
from ._budget import (
    ComputeBudgetError as ComputeBudgetError,
    MemoryBudgetError as MemoryBudgetError,
    memory_budget as memory_budget,
    set_memory_budget as set_memory_budget,
    set_state_budget as set_state_budget,
    state_budget as state_budget,
)
from ._devices import initialize_distributed as initialize_distributed, use_cpu_devices as use_cpu_devices
from ._tree import cast_parameters as cast_parameters, flatten as flatten
from .analysis import (
    StabilityReport as StabilityReport,
    classify_batch as classify_batch,
    fixed_point as fixed_point,
    hessian as hessian,
    stability as stability,
)
from .dynamics import (
    RESULTS as RESULTS,
    FlowOptions as FlowOptions,
    FlowSolution as FlowSolution,
    Rodas4 as Rodas4,
    flow as flow,
    flow_batch as flow_batch,
    save_times as save_times,
    summarize as summarize,
    train as train,
    train_batch as train_batch,
)
from .effective import (
    coupling_jacobian as coupling_jacobian,
    coupling_tensor as coupling_tensor,
    couplings as couplings,
    moments as moments,
    rbm_couplings as rbm_couplings,
    tangent_kernel as tangent_kernel,
)
from .energies import (
    RBM as RBM,
    AbstractEnergy as AbstractEnergy,
    AbstractRBM as AbstractRBM,
    CouplingModel as CouplingModel,
    HigherOrderIsing as HigherOrderIsing,
    Ising as Ising,
    MLPEnergy as MLPEnergy,
    PottsPairwise as PottsPairwise,
    PottsRBM as PottsRBM,
    WalshModel as WalshModel,
)
from .exact import (
    Target as Target,
    kl as kl,
    kl_and_grad as kl_and_grad,
    log_partition as log_partition,
    log_probs as log_probs,
    neg_energies as neg_energies,
    nll as nll,
    probs as probs,
)
from .io import load as load, load_rbm as load_rbm
from .space import (
    AbstractStateSpace as AbstractStateSpace,
    Potts as Potts,
    Spins as Spins,
    all_states as all_states,
    couplings_of_order as couplings_of_order,
    from_binary_basis as from_binary_basis,
    fwht as fwht,
    order_norms as order_norms,
    orders as orders,
    sharded as sharded,
    sites as sites,
    state_index as state_index,
    states_from_indices as states_from_indices,
    subset as subset,
    subsets_of_order as subsets_of_order,
    to_binary_basis as to_binary_basis,
    with_chunk_size as with_chunk_size,
)

__version__ = importlib.metadata.version("ebmflow")
