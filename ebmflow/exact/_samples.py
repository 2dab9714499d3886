"""Empirical distributions of samples, binary or colours (arrays or files); `Target.from_samples` makes targets."""

import os
from typing import Literal

import jax.numpy as jnp
import numpy as np

from .._budget import check_memory
from ..space import AbstractStateSpace, Potts, Spins, state_index

Encoding = Literal["auto", "01", "pm1", "colours"]


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


def to_colours(samples: np.ndarray, q: int | None) -> tuple[np.ndarray, int]:
    """Validate integer colours ``(samples, n)`` in ``0..q-1`` (``q`` inferred as the largest + 1 if None)."""
    x = np.asarray(samples)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"samples must have shape (num_samples, n) with at least one sample; got {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == bool):
        raise ValueError(f"colour samples must be numbers; got dtype {x.dtype}")
    whole = np.isfinite(x) & (x == np.round(x)) if np.issubdtype(x.dtype, np.floating) else np.ones(x.shape, bool)
    if q is None:
        q = max(int(np.max(np.where(whole, x, 0))) + 1, 2)
    bad = ~whole | (x < 0) | (x >= q)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"colour samples must be integers in 0..{q - 1} (q = {q}); row {row}, column {col} holds "
            f"{x[row, col].item()!r} ({bad.sum()} entries are out of range or not integers)"
        )
    return x.astype(np.int64), q


def _sample_weights(weights, m: int) -> np.ndarray:
    if weights is None:
        return np.ones(m)
    w = np.asarray(weights, dtype=float)
    if w.shape != (m,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {m} finite non-negative numbers (one per sample) with a positive sum; "
                         f"got shape {w.shape}")
    return w


def empirical(
    samples, *, q: int | None = None, encoding: Encoding = "auto", pseudocount: float = 0.0, spin_map: str = "2v-1",
    weights=None, dtype=None,
) -> tuple[jnp.ndarray, AbstractStateSpace, str]:
    """The (weighted) empirical distribution ``p(v) = (Σ_m w_m [v_m = v] + α) / (Σ w + α q**n)``, its space, a note.

    Binary samples (``q`` None, ``encoding`` not ``"colours"``) give spins; integer colours
    (``q`` given, or ``encoding="colours"`` with ``q`` inferred) give ``Potts(n, q)``.
    See `Target.from_samples`.
    """
    source = f"file {os.fspath(samples)!r}, " if isinstance(samples, (str, os.PathLike)) else ""
    x = read_samples(samples) if source else samples
    if encoding not in ("auto", "01", "pm1", "colours"):
        raise ValueError(f"encoding must be 'auto', '01', 'pm1' or 'colours'; got {encoding!r}")
    if q is not None or encoding == "colours":
        if q is not None and (isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 2):
            raise ValueError(f"q, the number of colours, must be an int >= 2; got {q!r}")
        if encoding in ("01", "pm1"):
            raise ValueError(f"encoding={encoding!r} is for binary samples (spins); with q given the samples are "
                             "integer colours: use encoding 'auto' or 'colours'")
        inferred = q is None
        colours, q = to_colours(x, q)
        space = Potts(colours.shape[1], q)
        index = np.asarray(space.state_index(colours))
        how = f"colours, q = {q} ({'inferred' if inferred else 'stated'})"
    else:
        stated = encoding != "auto"
        spins, encoding = to_spins(x, encoding, spin_map)
        space = Spins(spins.shape[1])
        index = np.asarray(state_index(spins))
        mapping = "" if encoding == "pm1" else f", mapped by s = {spin_map}"
        how = f"encoding {encoding} ({'stated' if stated else 'detected'}){mapping}"
    m, size = index.shape[0], space.size
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    what = f"n={space.n} spins (2**{space.n} probabilities)" if space.q == 2 and q is None else \
        f"{space.label} ({size} probabilities)"
    check_memory(f"a target over {what}", 2 * size * dtype.itemsize)
    if not (np.isfinite(pseudocount) and pseudocount >= 0):
        raise ValueError(f"pseudocount must be a finite number >= 0; got {pseudocount!r}")
    w = _sample_weights(weights, m)
    counts = np.bincount(index, weights=w, minlength=size)
    unseen = int((counts == 0).sum())
    if unseen and pseudocount == 0:
        states = f"2**{space.n} = {size}" if space.q == 2 else f"{space.q}**{space.n} = {size}"
        raise ValueError(
            f"{unseen} of the {states} states never occur in the {m} samples, so the empirical target has "
            "zero probabilities (infinite KL); pass pseudocount > 0 (e.g. 0.5)"
        )
    probs = (counts + pseudocount) / (w.sum() + pseudocount * size)
    weighting = "" if weights is None else f", weighted (effective number {w.sum():.6g})"
    note = f"{source}{m} samples, {how}{weighting}, pseudocount {pseudocount:g}"
    return jnp.asarray(probs, dtype), space, note
