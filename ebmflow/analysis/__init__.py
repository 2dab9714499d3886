"""Fixed points and their stability (THEORY §4–5)."""

from ._batch import classify_batch as classify_batch
from ._contacts import (
    apc as apc,
    frobenius_scores as frobenius_scores,
    ppv as ppv,
    ranked_pairs as ranked_pairs,
    read_contacts as read_contacts,
)
from ._fixed_point import FixedPoint as FixedPoint, fixed_point as fixed_point
from ._known_points import (
    duplicate_units as duplicate_units,
    w0_saddle as w0_saddle,
    w0_saddle_eigenvalue as w0_saddle_eigenvalue,
)
from ._spectrum import extreme_eigenvalues as extreme_eigenvalues, hessian as hessian
from ._stability import StabilityReport as StabilityReport, random_like as random_like, stability as stability
