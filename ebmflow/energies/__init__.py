from ._base import AbstractEnergy as AbstractEnergy
from ._coupling_model import CouplingModel as CouplingModel, WalshModel as WalshModel
from ._ising import HigherOrderIsing as HigherOrderIsing, Ising as Ising
from ._mlp import MLPEnergy as MLPEnergy
from ._potts_pairwise import PottsPairwise as PottsPairwise
from ._rbm import RBM as RBM, AbstractRBM as AbstractRBM, PottsRBM as PottsRBM
