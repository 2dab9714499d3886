"""Exact sums over all states: the streamed-reduction engine and its clients, and targets."""

from ._divergence import kl as kl, kl_and_grad as kl_and_grad, nll as nll
from ._sums import log_partition as log_partition, log_probs as log_probs, neg_energies as neg_energies, probs as probs
from ._target import Target as Target
