"""RBMs trained elsewhere, read from HDF5 files, mapped exactly onto ebmflow's `RBM` and `PottsRBM`.

Layouts (the first that matches is used; a file that matches none gets an error listing its keys):

1. The `rbms` package (DsysDML/rbms, ``rbms/io.py``): a scalar string dataset ``/model_type``
   and groups ``/update_{k}`` (``k`` gradient updates) holding ``params/{weight_matrix, vbias,
   hbias}`` (older files also or only have them directly under ``update_{k}``).

   - ``BBRBM``: {0,1} visible and hidden units, ``E = -vbias·v - hbias·h - vᵀ W h``, ``W (n_visible,
     n_hidden)``: mapped exactly by `RBM.from_bernoulli` (spins ``s = 2v - 1``).
   - ``PBRBM``: ``q`` colours, Bernoulli hidden units, ``W (n_visible, q, n_hidden)``, ``vbias
     (n_visible, q)``: `PottsRBM.from_rbms`.
   - ``IIRBM``: ±1 visible and hidden units, ``W (n_visible, n_hidden)``: `RBM` with spin hidden units.

2. The papers' Potts coupling-inference code (DsysDML/couplings_inference, ``utilities.py``):
   ``/update_{k}/{weight_matrix (q, n_visible, n_hidden), vbias (q, n_visible), hbias}`` and no
   ``model_type``: `PottsRBM.from_couplings_inference`. The two Potts orientations have the same
   shapes up to ``n_visible ↔ q``; without ``model_type`` a file that also holds
   ``hyperparameters`` or ``parallel_chains`` (written by `rbms`' predecessor TorchRBM) has the
   `rbms` orientation, any other the papers' one; ``layout`` overrides.

3. Epoch-keyed files of the papers' earlier trainers: datasets ``W{e}``, ``vbias{e}``, ``hbias{e}``
   per saved epoch ``e``: binary ``W (n_hidden, n_visible)`` with {0,1} units (`RBM.from_bernoulli`),
   or Potts ``W (q, n_visible, n_hidden)``, ``vbias (q, n_visible)``.

``update`` picks the checkpoint (``k`` or ``e``); the default is the last one.
"""

import os
import re

import h5py
import numpy as np

from ..energies._rbm import RBM, PottsRBM


def _fail(path: str, f: h5py.File, why: str):
    keys = sorted(f.keys())
    shown = ", ".join(keys[:12]) + (f", ... ({len(keys)} keys)" if len(keys) > 12 else "")
    raise ValueError(f"{path!r}: {why}. The file holds: {shown or 'nothing'}. Readable layouts: the rbms package "
                     "(model_type, update_k/params/...), update_k/{weight_matrix, vbias, hbias}, or "
                     "W{epoch}/vbias{epoch}/hbias{epoch}")


def _pick(path, f, numbers: list[int], update, what: str) -> int:
    if not numbers:
        _fail(path, f, f"no {what} found")
    if update is None:
        return max(numbers)
    if update not in numbers:
        listed = f"{sorted(numbers)[:8]}{'...' if len(numbers) > 8 else ''}"
        _fail(path, f, f"{what} {update} is not in the file (it has {listed})")
    return int(update)


def _read(group, name: str, path: str, f):
    for key in (f"params/{name}", name):
        try:
            return np.asarray(group[key])
        except KeyError:  # absent, or a dangling soft link of rbms files from Dec 2024 to Jan 2025
            continue
    _fail(path, f, f"{group.name} has no {name}")


def load_rbm(path: str | os.PathLike, update: int | None = None, layout: str = "auto") -> RBM | PottsRBM:
    """Read an RBM from an HDF5 file written by the `rbms` package or the papers' code (see the module docstring).

    Returns an `RBM` (binary visible units, spin convention) or a `PottsRBM` with the same
    probabilities as the stored model. ``update``: the checkpoint (default: the last).
    ``layout``: ``"auto"``, or for Potts files without ``model_type``, ``"rbms"`` (weights
    ``(n_visible, q, n_hidden)``) or ``"couplings_inference"`` (``(q, n_visible, n_hidden)``).
    """
    if layout not in ("auto", "rbms", "couplings_inference"):
        raise ValueError(f"layout must be 'auto', 'rbms' or 'couplings_inference'; got {layout!r}")
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path!r} as an HDF5 file: {err}") from None
    with f:
        model_type = f["model_type"][()] if "model_type" in f else None
        if isinstance(model_type, bytes):
            model_type = model_type.decode()
        updates = [int(m.group(1)) for key in f if (m := re.fullmatch(r"update_(\d+)", key))]
        epochs = [int(m.group(1)) for key in f if (m := re.fullmatch(r"W(\d+)", key))]
        if updates:
            group = f[f"update_{_pick(path, f, updates, update, 'update')}"]
            w, b, c = (_read(group, name, path, f) for name in ("weight_matrix", "vbias", "hbias"))
            if model_type is not None:
                return _from_rbms(path, f, str(model_type), w, b, c)
            if w.ndim == 2:
                return _from_rbms(path, f, "BBRBM", w, b, c)
            torchrbm = "hyperparameters" in f or "parallel_chains" in f
            if layout == "rbms" or (layout == "auto" and torchrbm):
                return _from_rbms(path, f, "PBRBM", w, b, c)
            return PottsRBM.from_couplings_inference(w, b, c)
        if epochs:
            e = _pick(path, f, epochs, update if update is not None else _last_epoch(f), "epoch")
            w, b, c = (np.asarray(f[f"{name}{e}"]) if f"{name}{e}" in f else _fail(path, f, f"no {name}{e}")
                       for name in ("W", "vbias", "hbias"))
            if w.ndim == 2:
                return RBM.from_bernoulli(w, b, c)
            if w.ndim == 3:
                return PottsRBM.from_couplings_inference(w, b, c)
            _fail(path, f, f"W{e} has shape {w.shape}, neither (n_hidden, n_visible) nor (q, n_visible, n_hidden)")
        _fail(path, f, "no RBM parameters found")


def _last_epoch(f) -> int | None:
    return int(np.asarray(f["ep_tot"])) if "ep_tot" in f else None


def _from_rbms(path, f, model_type: str, w, b, c):
    if model_type == "BBRBM" and w.ndim == 2:
        return RBM.from_bernoulli(w.T, b, c)
    if model_type == "PBRBM" and w.ndim == 3:
        return PottsRBM.from_rbms(w, b, c)
    if model_type == "IIRBM" and w.ndim == 2:
        return RBM(w.T, b, c, hidden="spin")
    _fail(path, f, f"model_type {model_type!r} with weight_matrix of shape {w.shape} is not a model ebmflow reads "
          "(it reads BBRBM, PBRBM and IIRBM)")
