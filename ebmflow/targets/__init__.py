"""Targets and synthetic teachers."""

from ..exact._samples import read_samples as read_samples
from ..exact._target import Target as Target
from ._alignment import ALPHABETS as ALPHABETS, Alignment as Alignment, read_alignment as read_alignment
from ._potts_teachers import blume_capel as blume_capel, random_potts as random_potts
from ._teachers import (
    edwards_anderson as edwards_anderson,
    ising_chain as ising_chain,
    ising_grid as ising_grid,
    random_ising as random_ising,
    sparse_parity as sparse_parity,
)

from_samples = Target.from_samples  # the constructor, as a function
