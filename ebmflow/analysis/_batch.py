"""Classifying the endpoints of a batch of flows."""

import numpy as np

from .._tree import take
from ..dynamics._solution import FlowSolution
from ._stability import StabilityReport, stability


def classify_batch(batch: FlowSolution, target, **stability_options) -> dict:
    """`stability` at the final state of every successful member of a batch.

    Returns ``reports`` (a `StabilityReport` per member, None for failed ones),
    ``fractions`` per kind (``"failed"`` included), and over the analysed members the
    minimum eigenvalue, ``n_unstable`` and ``rank`` per member.
    """
    ok = np.asarray(batch.ok)
    reports: list[StabilityReport | None] = []
    for i in range(ok.size):
        if not ok[i]:
            reports.append(None)
            continue
        member_target = take(target, i) if target.probs.ndim == 2 else target
        reports.append(stability(take(batch.models, (i, -1)), member_target, **stability_options))
    kinds = ["failed" if r is None else r.kind for r in reports]
    return dict(
        reports=reports,
        fractions={k: kinds.count(k) / len(kinds) for k in sorted(set(kinds))},
        min_eigenvalue=[None if r is None else float(r.eigenvalues[0]) for r in reports],
        n_unstable=[None if r is None else r.n_unstable for r in reports],
        rank=[None if r is None else r.rank for r in reports],
    )
