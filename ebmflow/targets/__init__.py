"""Targets and synthetic teachers."""

from ._samples import from_samples as from_samples, read_samples as read_samples
from ._target import Target as Target
from ._teachers import (
    edwards_anderson as edwards_anderson,
    ising_chain as ising_chain,
    ising_grid as ising_grid,
    random_ising as random_ising,
    sparse_parity as sparse_parity,
)
