"""Summary statistics of a batch of flows."""

import numpy as np

from ._solution import FlowSolution, result_codes, result_names


def summarize(batch: FlowSolution, kl_eps: float = 1e-3, alpha: float = 0.1) -> dict:
    """Statistics of a batch (leading axis) of solutions, as plain Python numbers.

    - ``members``, ``ok`` (counts) and ``results`` (count per result code name);
    - ``fraction_converged``: fraction of members with final KL < `kl_eps` (nats);
    - ``final_kl``: min, median, max over successful members;
    - ``learning_times``: per order ``k``, the median and the 10/90 % quantiles of
      ``τ_k(alpha)`` over the members that reached ``Δ_k <= alpha``, and that fraction.
    """
    ok = np.asarray(batch.ok)
    final_kl = np.asarray(batch.kl)[:, -1]
    codes = result_codes(batch.result)
    results = {name: int((codes == code).sum()) for code, name in enumerate(result_names())}
    taus = np.asarray(batch.learning_times(alpha))[ok]
    times = {}
    for k in range(1, taus.shape[-1]):
        reached = taus[:, k][np.isfinite(taus[:, k])]
        if reached.size:
            q10, q50, q90 = np.quantile(reached, [0.1, 0.5, 0.9])
            fraction = float(reached.size / max(ok.sum(), 1))
            times[k] = dict(median=float(q50), q10=float(q10), q90=float(q90), fraction=fraction)
    kl_ok = final_kl[ok]
    return dict(
        members=int(ok.size),
        ok=int(ok.sum()),
        results={name: count for name, count in results.items() if count},
        fraction_converged=float(np.mean(ok & (final_kl < kl_eps))),
        final_kl=(dict(min=float(kl_ok.min()), median=float(np.median(kl_ok)), max=float(kl_ok.max()))
                  if kl_ok.size else {}),
        kl_eps=kl_eps,
        alpha=alpha,
        learning_times=times,
    )
