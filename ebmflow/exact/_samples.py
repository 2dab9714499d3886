"""Empirical distributions of binary samples (arrays or files); `Target.from_samples` makes targets of them."""

import os
from typing import Literal

import jax.numpy as jnp
import numpy as np

from .._budget import check_memory
from ..space import Spins, state_index

Encoding = Literal["auto", "01", "pm1"]


def read_samples(path: str | os.PathLike) -> np.ndarray:
    """Read a ``(samples, n)`` array from ``.npy``, ``.csv`` (comma) or ``.txt`` (whitespace)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    readers = {
        ".npy": lambda: np.load(path, allow_pickle=False),
        ".csv": lambda: np.loadtxt(path, delimiter=",", ndmin=2),
        ".txt": lambda: np.loadtxt(path, ndmin=2),
    }
    if ext not in readers:
        raise ValueError(f"cannot read samples from {path!r}: accepted file types are .npy, .csv and .txt")
    try:
        return np.asarray(readers[ext]())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read samples from {path!r}: {err}") from err


def to_spins(samples: np.ndarray, encoding: Encoding = "auto", spin_map: str = "2v-1") -> tuple[np.ndarray, str]:
    """Validate binary samples ``(samples, n)`` and map them to ±1; returns ``(spins, encoding used)``.

    ``encoding``: ``"01"``, ``"pm1"`` or ``"auto"`` (``"pm1"`` if any entry is -1, else ``"01"``).
    {0,1} data map by ``s = 2v - 1`` (default; matches `RBM.from_bernoulli`) or ``s = 1 - 2v``.
    """
    x = np.asarray(samples)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"samples must have shape (num_samples, n) with at least one sample; got {x.shape}")
    Spins(x.shape[1])
    if encoding not in ("auto", "01", "pm1"):
        raise ValueError(f"encoding must be 'auto', '01' or 'pm1'; got {encoding!r}")
    if spin_map not in ("2v-1", "1-2v"):
        raise ValueError(f"spin_map must be '2v-1' or '1-2v'; got {spin_map!r}")
    if encoding == "auto":
        encoding = "pm1" if np.any(x == -1) else "01"
    allowed = (0, 1) if encoding == "01" else (-1, 1)
    bad = ~np.isin(x, allowed)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"samples must be binary: with encoding {encoding!r} the values must be {allowed}; "
            f"row {row}, column {col} holds {x[row, col].item()!r} ({bad.sum()} entries are not binary)"
        )
    if encoding == "pm1":
        return x.astype(np.int8), encoding
    v = x.astype(np.int8)
    return (2 * v - 1 if spin_map == "2v-1" else 1 - 2 * v), encoding


def empirical(
    samples, *, encoding: Encoding = "auto", pseudocount: float = 0.0, spin_map: str = "2v-1", dtype=None
) -> tuple[jnp.ndarray, str]:
    """Empirical distribution of samples, ``p(s) = (count(s) + α) / (M + α 2**n)``, and a description.

    ``samples``: an array ``(M, n)`` or a path to a ``.npy``/``.csv``/``.txt`` file.
    With ``pseudocount α = 0`` every state must be observed (a target must be
    strictly positive). The description reports the encoding and whether it was detected.
    """
    stated = encoding != "auto"
    source = f"file {os.fspath(samples)!r}, " if isinstance(samples, (str, os.PathLike)) else ""
    x = read_samples(samples) if source else samples
    spins, encoding = to_spins(x, encoding, spin_map)
    m, n = spins.shape
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    check_memory(f"a target over n={n} spins (2**{n} probabilities)", 2 * 2**n * dtype.itemsize)
    if not (np.isfinite(pseudocount) and pseudocount >= 0):
        raise ValueError(f"pseudocount must be a finite number >= 0; got {pseudocount!r}")
    counts = np.bincount(np.asarray(state_index(spins)), minlength=2**n).astype(np.float64)
    unseen = int((counts == 0).sum())
    if unseen and pseudocount == 0:
        raise ValueError(
            f"{unseen} of the 2**{n} = {2**n} states never occur in the {m} samples, so the empirical target has "
            "zero probabilities (infinite KL); pass pseudocount > 0 (e.g. 0.5)"
        )
    probs = (counts + pseudocount) / (m + pseudocount * 2**n)
    how = "stated" if stated else "detected"
    mapping = "" if encoding == "pm1" else f", mapped by s = {spin_map}"
    note = f"{source}{m} samples, encoding {encoding} ({how}){mapping}, pseudocount {pseudocount:g}"
    return jnp.asarray(probs, dtype), note
