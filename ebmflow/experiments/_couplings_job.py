"""The couplings job of the command line: read an RBM, compute its couplings by order, score contacts, write files."""

import dataclasses
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .._tree import cast_parameters
from ..analysis._contacts import apc, frobenius_scores, ppv, ranked_pairs, read_contacts
from ..effective._rbm_couplings import potts_form, quadrature, rbm_couplings
from ..energies._rbm import RBM
from ..io._coupling_plots import coupling_figures
from ..io._rbm_files import load_rbm
from ..io._results import save, write_json
from ._run import versions


@dataclasses.dataclass(frozen=True)
class CouplingsJob:
    """What `run_couplings` computes: orders (1, 2, and 3 on ``triplets``), method and contact options."""

    model: str
    orders: tuple[int, ...] = (1, 2)
    triplets: tuple[tuple[int, int, int], ...] = ()
    update: int | None = None
    layout: str = "auto"
    method: str = "gauss"
    tau: float = 2.5
    nodes: int | None = None
    gap: int | None = 0
    contacts: str | None = None
    cutoff: float = 7.5
    index_base: int = 1
    min_separation: int = 6
    dtype: str = "float64"


def run_couplings(job: CouplingsJob, out: str | Path, *, progress: bool = False, log=print,
                  formats=("png",)) -> dict:
    """Run ``job``: write ``out/couplings.npz`` (arrays and a JSON ``metadata``), ``summary.json`` and figures.

    Returns the summary. Every check of the inputs (model file, orders, contact map) happens
    before the output folder is created.
    """
    start = time.time()
    rbm = load_rbm(job.model, job.update, job.layout)
    if job.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {job.dtype!r}")
    rbm = cast_parameters(rbm, jnp.dtype(job.dtype))
    n, q = rbm.space.n, rbm.space.q
    spins = isinstance(rbm, RBM)
    bad = sorted(set(job.orders) - {1, 2, 3})
    if bad or (3 in job.orders and not job.triplets):
        raise ValueError(f"orders are 1 (fields), 2 (pairs) and 3 (on given triplets); got {list(job.orders)}"
                         + (" with no triplets" if not bad else ""))
    contacts = None if job.contacts is None else read_contacts(job.contacts, n, job.cutoff, job.index_base)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options = dict(method=job.method, nodes=job.nodes, tau=job.tau, progress=progress)
    arrays = {}
    if 1 in job.orders:
        arrays["fields"] = rbm_couplings(rbm, 1, **options)
    if 2 in job.orders:
        arrays["pairs"] = rbm_couplings(rbm, 2, **options)
        log(f"pairs of {n} sites done ({time.time() - start:.1f} s)")
    if 3 in job.orders:
        arrays["triplet_sites"] = np.asarray(job.triplets)
        arrays["triplets"] = rbm_couplings(rbm, 3, sites=job.triplets, **options)
    summary = dict(model=str(job.model), model_type=type(rbm).__name__, n=n, q=q, n_hidden=rbm.n_hidden,
                   hidden=rbm.hidden, method=job.method, dtype=job.dtype)
    if job.method != "exact":
        form = potts_form(rbm)
        sigma = float(np.sqrt(np.asarray(form.rest, dtype=np.float64).sum(1).max()))
        summary["quadrature_nodes"] = len(quadrature(sigma, rbm.hidden, job.nodes)[0])
        summary["sigma_max"] = sigma
    if "pairs" in arrays:
        scores = frobenius_scores(arrays["pairs"], None if spins else job.gap)
        arrays["scores"], arrays["scores_apc"] = scores, apc(scores)
        ranked, ranked_scores = ranked_pairs(arrays["scores_apc"], job.min_separation)
        arrays["ranked_pairs"], arrays["ranked_scores"] = ranked, ranked_scores
        summary["top_pairs"] = [[int(i), int(j), float(s)] for (i, j), s in zip(ranked[:10], ranked_scores[:10])]
        if contacts is not None:
            arrays["contacts"], arrays["ppv"] = contacts, ppv(ranked, contacts)
            summary["ppv"] = {label: float(arrays["ppv"][k - 1]) for label, k in
                              (("L/10", max(n // 10, 1)), ("L/5", max(n // 5, 1)), ("L/2", max(n // 2, 1)), ("L", n))
                              if k <= len(arrays["ppv"])}
    summary["wall_time_s"] = time.time() - start
    summary["versions"] = versions()
    metadata = dict(summary, job=dataclasses.asdict(job), arrays=_DESCRIPTIONS)
    save(out / "couplings.npz", metadata, arrays)
    write_json(out / "summary.json", summary)
    summary["figures"] = [str(p) for p in coupling_figures(arrays, out, formats)]
    return summary


_DESCRIPTIONS = {
    "fields": "fields: J_i (n,) for spins, zero-sum h_i(μ) (n, q) for colours (visible bias included)",
    "pairs": "pairs: J_ij (n, n) for spins, zero-sum J_ij(μ, ν) (n, n, q, q) for colours; zero diagonal",
    "triplet_sites": "the requested site triplets (T, 3)",
    "triplets": "triplets: J_S (T,) for spins, zero-sum tensors (T, q, q, q) for colours",
    "scores": "Frobenius norms of the pair tensors over the non-gap colours (|J_ij| for spins) (n, n)",
    "scores_apc": "scores with the average-product correction (n, n)",
    "ranked_pairs": "pairs i < j with |i - j| >= min_separation, by decreasing APC score (K, 2)",
    "ranked_scores": "their scores (K,)",
    "contacts": "the contact map read (n, n)",
    "ppv": "positive predictive value of the top k ranked pairs, k = 1..K (K,)",
}
