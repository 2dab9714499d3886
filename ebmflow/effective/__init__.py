"""The effective model: couplings of every order, moments, the coupling Jacobian and tangent kernel."""

from ._couplings import couplings as couplings, moments as moments
from ._jacobian import coupling_jacobian as coupling_jacobian, tangent_kernel as tangent_kernel
from ._rbm_couplings import rbm_couplings as rbm_couplings
from ._tensors import coupling_tensor as coupling_tensor
