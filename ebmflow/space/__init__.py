"""State spaces: enumeration, chunk plans of exact sums, and the basis of the effective model."""

from ._abstract import (
    AbstractStateSpace as AbstractStateSpace,
    default_mesh as default_mesh,
    sharded as sharded,
    with_chunk_size as with_chunk_size,
)
from ._orders import (
    all_states as all_states,
    couplings_of_order as couplings_of_order,
    order_norms as order_norms,
    orders as orders,
    sites as sites,
    space_of as space_of,
    states_from_indices as states_from_indices,
    subset as subset,
    subsets_of_order as subsets_of_order,
)
from ._potts import Potts as Potts, helmert as helmert
from ._spins import (
    Spins as Spins,
    from_binary_basis as from_binary_basis,
    state_index as state_index,
    to_binary_basis as to_binary_basis,
)
from ._transform import fwht as fwht, per_axis as per_axis
