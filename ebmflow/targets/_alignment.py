"""Multiple sequence alignments (FASTA / A2M): colours, a choice of columns, and sequence reweighting."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from ..exact._target import Target

#: Alphabets by name; the gap ``-`` is colour 0 (the papers' and the `rbms` package's convention).
ALPHABETS = {"protein": "-ACDEFGHIKLMNPQRSTVWY", "rna": "-ACGU", "dna": "-ACGT"}


@dataclasses.dataclass(frozen=True)
class Alignment:
    """An alignment as colours: ``sequences (M, L)`` ints in ``0..q-1`` (``alphabet[c]`` is colour ``c``).

    ``weights (M,)``: ``1 / #{rows within identity >= threshold}`` (the row itself counted;
    identity is the fraction of equal positions, gaps included), or ones when
    ``threshold`` is None. ``n_effective = Σ weights``.
    """

    sequences: np.ndarray
    alphabet: str
    names: tuple[str, ...]
    weights: np.ndarray
    threshold: float | None
    columns: tuple[int, ...]

    @property
    def q(self) -> int:
        return len(self.alphabet)

    @property
    def n_effective(self) -> float:
        return float(self.weights.sum())

    def target(self, columns=None, pseudocount: float = 0.5, dtype=None) -> Target:
        """The weighted empirical target over ``Potts(len(columns), q)`` of the chosen columns (default all).

        Exact targets enumerate ``q**n`` states: choose a few columns (``q = 21``: at most ~5).
        """
        cols = range(self.sequences.shape[1]) if columns is None else _check_columns(columns, self.sequences.shape[1])
        return Target.from_samples(self.sequences[:, list(cols)], q=self.q, weights=self.weights,
                                   pseudocount=pseudocount, dtype=dtype)


def _check_columns(columns, length: int) -> list[int]:
    cols = [int(c) for c in columns]
    if not cols or len(set(cols)) != len(cols) or min(cols) < 0 or max(cols) >= length:
        raise ValueError(f"columns must be distinct indices in [0, {length}); got {list(columns)}")
    return cols


def _records(text: str, path: str):
    name, parts = None, []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if name is not None:
                yield name, "".join(parts)
            name, parts = line[1:].strip(), []
        elif name is None:
            raise ValueError(f"{path!r} is not a FASTA/A2M alignment: line {number} comes before any '>' header")
        else:
            parts.append(line)
    if name is not None:
        yield name, "".join(parts)


def identity_weights(sequences: np.ndarray, q: int, threshold: float, block: int = 2048) -> np.ndarray:
    """``1 / #{rows t : identity(s, t) >= threshold}`` per row ``s``, identities by one-hot products in blocks."""
    m, length = sequences.shape
    one_hot = jax.nn.one_hot(jnp.asarray(sequences), q, dtype=jnp.float32).reshape(m, length * q)
    counts = np.zeros(m)
    matches = jax.jit(lambda a, b: (a @ b.T >= threshold * length - 1e-3).sum(1))  # counts are exact in float32
    for start in range(0, m, block):
        counts[start : start + block] = np.asarray(matches(one_hot[start : start + block], one_hot))
    return 1 / counts


def read_alignment(
    path: str | os.PathLike, alphabet: str = "protein", *, columns=None, threshold: float | None = 0.8,
    unknown: str = "error", format: str = "auto",
) -> Alignment:
    """Read an aligned FASTA or A2M file into colours, with sequence weights.

    - ``alphabet``: ``"protein"`` (20 amino acids and the gap, ``q = 21``), ``"rna"``, ``"dna"``
      (names in any case), or a string of symbols (colour ``c`` is its ``c``-th symbol).
    - ``format``: ``"fasta"`` (letters read upper-case, ``.`` is a gap), ``"a2m"`` (lower-case
      letters and ``.`` are insertions and are dropped), or ``"auto"`` (``a2m`` for a ``.a2m`` file).
      The gap is the alphabet's ``-``, whatever its colour; in an alphabet without ``-``, ``.`` is
      an unknown letter.
    - ``unknown``: ``"error"`` (a letter outside the alphabet is reported with its sequence and
      column) or ``"gap"`` (it becomes the gap; the alphabet must have ``-``).
    - ``columns``: keep only these columns (after insertions are dropped).
    - ``threshold``: identity threshold of the reweighting (default 0.8), over the whole
      aligned length; None gives unit weights.
    """
    path = os.fspath(path)
    named = isinstance(alphabet, str) and alphabet.lower() in ALPHABETS
    symbols = ALPHABETS[alphabet.lower()] if named else alphabet
    if not isinstance(symbols, str) or len(set(symbols.upper())) != len(symbols) or len(symbols) < 2:
        raise ValueError(f"alphabet must be one of {sorted(ALPHABETS)} or a string of at least 2 distinct symbols "
                         f"(letters are read upper-case); got {alphabet!r}")
    if unknown not in ("error", "gap"):
        raise ValueError(f"unknown must be 'error' or 'gap'; got {unknown!r}")
    gap = symbols.find("-")
    if unknown == "gap" and gap < 0:
        raise ValueError(f"unknown='gap' reads unknown letters as the gap, but the alphabet {symbols!r} has no gap '-'")
    if format not in ("auto", "fasta", "a2m"):
        raise ValueError(f"format must be 'auto', 'fasta' or 'a2m'; got {format!r}")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1] or None; got {threshold!r}")
    try:
        with open(path) as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read alignment {path!r}: {err}") from None
    a2m = format == "a2m" or (format == "auto" and path.lower().endswith(".a2m"))
    code = {symbol: colour for colour, symbol in enumerate(symbols.upper())}
    if gap >= 0:
        code.setdefault(".", gap)
    names, rows = [], []
    for name, sequence in _records(text, path):
        kept = "".join(c for c in sequence if not (c.islower() or c == ".")) if a2m else sequence
        row = []
        for column, letter in enumerate(kept.upper()):
            colour = code.get(letter)
            if colour is None:
                if unknown == "error":
                    hint = "pass unknown='gap' to read it as a gap" if gap >= 0 else "the alphabet has no gap '-'"
                    if not named:
                        hint += (f" (a custom alphabet: colour c is its c-th symbol; the named alphabets are "
                                 f"{', '.join(sorted(ALPHABETS))})")
                    raise ValueError(f"{path!r}: sequence {len(rows)} ({name!r}) has {letter!r} at column {column}, "
                                     f"not in the alphabet {symbols!r}; {hint}")
                colour = gap
            row.append(colour)
        names.append(name)
        rows.append(row)
    if not rows:
        raise ValueError(f"{path!r} holds no sequences")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"{path!r}: the aligned sequences differ in length ({sorted(lengths)}); not an alignment")
    sequences = np.asarray(rows, dtype=np.int32)
    weights = np.ones(len(rows)) if threshold is None else identity_weights(sequences, len(symbols), threshold)
    cols = list(range(sequences.shape[1])) if columns is None else _check_columns(columns, sequences.shape[1])
    return Alignment(sequences[:, cols], symbols, tuple(names), weights, threshold, tuple(cols))
