"""Results files and figures."""

from ._plots import plot_all as plot_all
from ._rbm_files import load_rbm as load_rbm
from ._results import Results as Results, load as load, save as save
