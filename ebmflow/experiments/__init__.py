"""Experiment files and runs."""

from ._config import (
    ConfigError as ConfigError,
    Experiment as Experiment,
    load_experiment as load_experiment,
    parse_experiment as parse_experiment,
)
from ._couplings_job import CouplingsJob as CouplingsJob, run_couplings as run_couplings
from ._run import (
    Outcome as Outcome,
    build_model as build_model,
    build_target as build_target,
    run_experiment as run_experiment,
)
