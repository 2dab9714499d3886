"""Contact prediction from Potts pair couplings (THEORY §10): Frobenius scores, APC, ranking, PPV.

Follows the papers' coupling-inference code (DsysDML/couplings_inference): Frobenius norms of
the zero-sum pair tensors over the colours other than the gap, the average-product correction
with sums over every index (the zero diagonal included), pairs ranked by score with a minimum
sequence separation, and the positive predictive value of the top ``k`` pairs.
"""

import os

import numpy as np


def frobenius_scores(pairs, gap: int | None = 0) -> np.ndarray:
    """``F_ij = ||J_ij(μ, ν)||_F`` over the colours other than ``gap`` (None keeps all): ``(n, n)``, zero diagonal.

    ``pairs``: ``(n, n, q, q)`` pair tensors (`ebmflow.rbm_couplings(rbm, 2)`), or ``(n, n)``
    spin couplings (scores ``|J_ij|``).
    """
    j = np.asarray(pairs, dtype=np.float64)
    if j.ndim == 2:
        scores = np.abs(j)
    elif j.ndim == 4 and j.shape[0] == j.shape[1] and j.shape[2] == j.shape[3]:
        q = j.shape[2]
        if gap is not None and not (isinstance(gap, (int, np.integer)) and 0 <= gap < q):
            raise ValueError(f"gap must be a colour in 0..{q - 1} or None; got {gap!r}")
        keep = [c for c in range(q) if c != gap]
        scores = np.sqrt((j[:, :, keep][:, :, :, keep] ** 2).sum((2, 3)))
    else:
        raise ValueError(f"pairs must have shape (n, n, q, q) or (n, n); got {j.shape}")
    scores = scores.copy()
    np.fill_diagonal(scores, 0.0)
    return scores


def apc(scores) -> np.ndarray:
    """Average-product correction ``F_ij - F_i· F_·j / F_··`` (means over all ``n`` indices, diagonal included)."""
    f = np.asarray(scores, dtype=np.float64)
    total = f.mean()
    corrected = f - np.outer(f.mean(1), f.mean(0)) / (total if total else 1.0)
    np.fill_diagonal(corrected, 0.0)
    return corrected


def ranked_pairs(scores, min_separation: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``i < j`` with ``|i - j| >= min_separation`` by decreasing score: ``(pairs (K, 2), scores (K,))``.

    The default 6 is the papers' ``|i - j| > 5``.
    """
    f = np.asarray(scores)
    i, j = np.triu_indices(f.shape[0], max(int(min_separation), 1))
    order = np.argsort(-f[i, j], kind="stable")
    return np.stack([i[order], j[order]], axis=1), f[i, j][order]


def ppv(ranked, contacts) -> np.ndarray:
    """Positive predictive value of the top ``k`` ranked pairs for ``k = 1..K``: the fraction that are contacts."""
    c = np.asarray(contacts, dtype=bool)
    hits = c[ranked[:, 0], ranked[:, 1]]
    return np.cumsum(hits) / np.arange(1, len(hits) + 1)


def read_contacts(path: str | os.PathLike, n: int, cutoff: float = 7.5, index_base: int = 1) -> np.ndarray:
    """A contact map ``(n, n)`` of booleans from a file.

    - ``.npy``: an ``(n, n)`` matrix of distances (contact where ``d < cutoff``) or of booleans.
    - text: whitespace columns ``i j [... distance]`` with ``index_base``-based sites (1 by default,
      as in PDB-derived files); with three or more columns the last is a distance and a pair is a
      contact where it is below ``cutoff``, with two every listed pair is a contact.
    """
    path = os.fspath(path)
    try:
        if path.lower().endswith(".npy"):
            m = np.load(path, allow_pickle=False)
            if m.shape != (n, n):
                raise ValueError(f"the matrix has shape {m.shape}; the model has n = {n} sites")
            contacts = m if m.dtype == bool else m < cutoff
        else:
            table = np.loadtxt(path, ndmin=2)
            if table.shape[1] < 2:
                raise ValueError("each line needs at least two columns, i and j")
            ij = table[:, :2].astype(int) - index_base
            if ij.min() < 0 or ij.max() >= n:
                raise ValueError(f"site numbers must be in {index_base}..{n - 1 + index_base} (index_base "
                                 f"{index_base}); found {ij.min() + index_base}..{ij.max() + index_base}")
            keep = table[:, -1] < cutoff if table.shape[1] >= 3 else np.ones(len(table), bool)
            contacts = np.zeros((n, n), bool)
            contacts[ij[keep, 0], ij[keep, 1]] = True
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the contact map {path!r}: {err}") from None
    contacts = np.asarray(contacts, bool)
    return contacts | contacts.T
