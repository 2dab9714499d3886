from ._base import AbstractEnergy as AbstractEnergy
from ._ising import HigherOrderIsing as HigherOrderIsing, Ising as Ising, WalshModel as WalshModel
from ._mlp import MLPEnergy as MLPEnergy
from ._rbm import RBM as RBM
