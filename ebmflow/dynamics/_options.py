"""The options of the gradient flow: one definition for `flow`, `flow_batch` and experiment files."""

import dataclasses
from typing import Any

import diffrax as dfx
import numpy as np

from .._checks import finite_number, is_finite_number, positive_int


@dataclasses.dataclass(frozen=True)
class FlowOptions:
    """Options of `ebmflow.flow` and `ebmflow.flow_batch`, with their defaults.

    - ``ts``: save times in ``[0, t1]`` (default: `save_times(t1, num_saves)`, 0 and
      log-spaced times up to ``t1``); steps land on them exactly.
    - ``num_saves``: log-spaced save times when ``ts`` is not given.
    - ``solver``: a diffrax solver (default `Rodas4` with the exact Hessian).
    - ``rtol``, ``atol``: error control of the adaptive step.
    - ``penalty``: L2 penalty strength, ``L = KL + (penalty/2)||θ||²``.
    - ``max_steps``: solver step budget.
    - ``steady_tol``: stop once ``||∇L|| <= steady_tol`` (None: integrate to ``t1``).
    - ``progress``: a tqdm progress bar.
    """

    ts: Any = None
    num_saves: int = 61
    solver: Any = None
    rtol: float = 1e-6
    atol: float = 1e-9
    penalty: float = 0.0
    max_steps: int = 100_000
    steady_tol: float | None = None
    progress: bool = False

    @classmethod
    def from_keywords(cls, function: str, options: dict) -> "FlowOptions":
        """``FlowOptions(**options)``, or a TypeError naming the unknown keywords and the accepted ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(f"{function}() got unknown option(s) {unknown}; accepted: {', '.join(names)}")
        return cls(**options)

    def save_times_for(self, t1) -> np.ndarray:
        """The validated save times for a flow to ``t1`` (and ``t1`` itself checked)."""
        if isinstance(t1, (str, bytes)) or np.ndim(t1) != 0 or not (np.isfinite(t1) and t1 > 0):
            raise ValueError(f"t1 must be a positive finite time (a number); got {t1!r}")
        if self.ts is None:
            return save_times(t1, positive_int("num_saves", self.num_saves))
        try:
            ts = np.asarray(self.ts, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"ts must be save times (numbers); got {self.ts!r}") from None
        if ts.ndim != 1 or ts.size == 0:
            raise ValueError(f"ts must be increasing save times in [0, t1={t1}], a 1-D sequence; got shape {ts.shape}")
        # Times within rounding of t1 (np.logspace can overshoot by an ulp) are t1.
        ts = np.where((ts > t1) & (ts <= t1 * (1 + 1e-12)), t1, ts)
        for i, t in enumerate(ts):
            if not np.isfinite(t) or t < 0 or t > t1 or (i and t <= ts[i - 1]):
                why = ("not finite" if not np.isfinite(t) else "outside [0, t1]" if t < 0 or t > t1
                       else f"not after ts[{i - 1}] = {float(ts[i - 1])!r}")
                raise ValueError(f"ts must be increasing save times in [0, t1={t1}]; ts[{i}] = {float(t)!r} is {why}")
        return ts

    def check(self) -> "FlowOptions":
        """Refuse impossible options, naming them; returns ``self``."""
        if not (is_finite_number(self.rtol, positive=True) and is_finite_number(self.atol, positive=True)):
            raise ValueError(f"rtol and atol must be positive; got rtol={self.rtol!r}, atol={self.atol!r} (finite "
                             "numbers)")
        if self.steady_tol is not None and not is_finite_number(self.steady_tol, positive=True):
            raise ValueError(f"steady_tol must be positive or None; got {self.steady_tol!r} (a finite number)")
        finite_number("penalty", self.penalty)
        positive_int("max_steps", self.max_steps)
        if self.solver is not None and not isinstance(self.solver, dfx.AbstractSolver):
            raise TypeError(f"solver must be a diffrax solver such as ebmflow.Rodas4() or diffrax.Kvaerno5() (None: "
                            f"Rodas4 with the exact Hessian); got {self.solver!r}")
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be True or False; got {self.progress!r}")
        return self


def save_times(t1: float, num: int = 61, t_min: float | None = None) -> np.ndarray:
    """Default save times: ``t = 0`` and ``num`` log-spaced times from ``t_min`` to ``t1``.

    ``t_min`` defaults to ``min(t1 / 1e6, 0.1)``: six decades, and never later than
    ``t = 0.1`` so that the early learning of low orders is resolved.
    """
    t_min = min(t1 / 1e6, 0.1) if t_min is None else t_min
    ts = np.logspace(np.log10(t_min), np.log10(t1), num)
    ts[-1] = t1  # 10**log10(t1) can exceed t1 by an ulp, which `flow` would reject
    return np.concatenate([[0.0], ts])
