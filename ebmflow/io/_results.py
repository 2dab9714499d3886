"""Results files: one ``.npz`` per run, arrays plus a JSON ``metadata`` entry, written atomically.

Why npz: it needs only NumPy (no HDF5 library), is a single file that
`numpy.load` reads anywhere, and our results are a few dense arrays plus a
JSON description; HDF5's partial reads and zarr's chunked stores buy nothing
at these sizes.
"""

import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._devices import is_writer

FORMAT = "ebmflow-results/1"


class OutputError(OSError):
    """A file or folder that cannot be written: ``str()`` names the path and the cause.

    An `OSError` (``errno``, ``strerror``, ``filename``), so callers that handle file-system
    errors handle it too; the command line prints it and exits with code 2.
    """

    def __str__(self) -> str:
        return f"cannot write {self.filename}: {self.strerror}"


class Results(Mapping):
    """A loaded results file: ``results.metadata`` (dict) and arrays by name (``results["kl"]``)."""

    def __init__(self, metadata: dict, arrays: dict[str, np.ndarray]):
        self.metadata = metadata
        self._arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self._arrays.items())
        return f"Results({self.metadata.get('name')!r}, status={self.metadata.get('status')!r}, {shapes})"


def save(path: str | os.PathLike, metadata: dict, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write a results file atomically (a temporary file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"format": FORMAT, **metadata}, default=_json_default)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    return _write_atomically(path, "wb", lambda f: np.savez(f, metadata=np.array(meta), **arrays))


def load(path: str | os.PathLike) -> Results:
    """Read a results file written by ebmflow (``ebmflow run``/``demo``, or `save`)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.npz"
    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would try .npy or pickle
        raise ValueError(f"{str(path)!r} is not an ebmflow results file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read results file {str(path)!r}: {err}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a damaged archive: bad checksum, truncated entry
        raise ValueError(f"results file {str(path)!r} is damaged (a corrupted or truncated .npz archive): {err}") \
            from None
    if "metadata" not in arrays:
        raise ValueError(f"{str(path)!r} is not an ebmflow results file (no metadata entry)")
    try:
        metadata = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError:
        metadata = None
    if not isinstance(metadata, dict):
        raise ValueError(f"{str(path)!r} is not an ebmflow results file (its metadata entry is not a JSON object)")
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} has format {metadata.get('format')!r}; this ebmflow reads {FORMAT!r}")
    return Results(metadata, arrays)


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write JSON atomically."""
    return _write_atomically(Path(path), "w", lambda f: json.dump(data, f, indent=2, default=_json_default))


def write_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically, in the format of ``path``'s suffix (a killed run leaves no torn image)."""
    return _write_atomically(Path(path), "wb", lambda f: fig.savefig(f, format=Path(path).suffix[1:], dpi=dpi))


def _write_atomically(path: Path, mode: str, write) -> Path:
    """``write(file)`` into a temporary file ``.NAME.*.tmp`` in ``path``'s folder, then rename it to ``path``.

    A failure leaves ``path`` as it was and no temporary file behind (a killed process can leave
    one: `remove_stale_temporaries`); an `OSError` comes back as an `OutputError` naming ``path``.
    In a multi-process run only process 0 writes.
    """
    if not is_writer():
        return path
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private (0600); give it normal permissions
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(err.errno, err.strerror or str(err), str(path)) from err
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike,
                             names=("results.npz", "summary.json", "*.png", "*.pdf")) -> list[Path]:
    """Delete the temporary files ``.NAME.*.tmp`` that a killed writer left in ``folder``; returns them.

    ``names`` are glob patterns: the results, the summary and the figures by default.

    Only for a folder no other writer is using (the caller holds its lock): a live writer's
    temporary file matches the same pattern.
    """
    stale = [p for name in names for p in Path(folder).glob(f".{name}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot store {type(x).__name__} in JSON")
