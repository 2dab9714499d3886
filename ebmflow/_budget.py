"""Budgets: refuse exact computations that cannot fit in memory or finish in reasonable time, before starting.

- Memory: bytes; `set_memory_budget`, else ``$EBMFLOW_MEMORY_BUDGET``, else half of the RAM.
- Compute: the number of states one exact sum may visit; `set_state_budget`, else
  ``$EBMFLOW_STATE_BUDGET``, else ``2**32``. A refusal estimates the time at this
  machine's rate, measured once per process on a small elementwise pass.
"""

import decimal
import functools
import os
import re
import time

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
DEFAULT_STATE_BUDGET = 2**32
_memory_budget: int | None = None
_state_budget: int | None = None


class MemoryBudgetError(ValueError):
    """An exact computation would need more memory than the budget allows."""


class ComputeBudgetError(ValueError):
    """An exact sum would visit more states than the state budget allows."""


def parse_bytes(size: int | str, what: str = "memory size") -> int:
    """`8GiB`, `500MB`, `1e9` or a positive int -> bytes."""
    accepted = "use a positive size such as 8GiB, 500MB or a number of bytes"
    if isinstance(size, int):
        number = size
    else:
        match = re.fullmatch(r"\s*([0-9.]+(?:E[+-]?[0-9]+)?)\s*((?:[KMGT]I?)?B)?\s*", str(size).upper())
        if match is None:
            raise ValueError(f"cannot read {what} {size!r}; {accepted}")
        number = int(float(match.group(1)) * _UNITS[match.group(2) or ""])
    if number <= 0:
        raise ValueError(f"{what} must be positive; got {size!r}: {accepted}")
    return number


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget() -> int:
    """The budget in bytes: `set_memory_budget`, else `$EBMFLOW_MEMORY_BUDGET`, else half of RAM."""
    if _memory_budget is not None:
        return _memory_budget
    env = os.environ.get("EBMFLOW_MEMORY_BUDGET")
    return parse_bytes(env, "the environment variable EBMFLOW_MEMORY_BUDGET") if env else _physical_memory() // 2


def set_memory_budget(size: int | str | None) -> None:
    """Set the memory budget for exact sums (bytes or a string like `"16GiB"`); None restores the default."""
    global _memory_budget
    _memory_budget = None if size is None else parse_bytes(size)


def state_budget() -> int:
    """The most states one exact sum may visit: `set_state_budget`, else `$EBMFLOW_STATE_BUDGET`, else 2**32."""
    if _state_budget is not None:
        return _state_budget
    env = os.environ.get("EBMFLOW_STATE_BUDGET")
    if not env:
        return DEFAULT_STATE_BUDGET
    try:
        value = int(float(env))
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"the environment variable EBMFLOW_STATE_BUDGET must be a positive number of states, such "
                         f"as 2e10; got {env!r}")
    return value


def set_state_budget(states: int | None) -> None:
    """Set the most states one exact sum may visit (default ``2**32``); None restores the default."""
    global _state_budget
    if states is not None and (isinstance(states, bool) or not isinstance(states, (int, float)) or not states >= 1):
        raise ValueError(f"the state budget must be a positive number of states; got {states!r}")
    _state_budget = None if states is None else int(states)


def _significant(x, digits: int) -> str:
    """``x`` to ``digits`` significant digits; ints beyond float's range (``q**n`` can be) go through Decimal."""
    return f"{x if x < 1e300 else decimal.Decimal(x):.{digits}g}"


def format_count(n: float) -> str:
    """A count, exact below 10**6, else to 4 significant digits; any size."""
    return str(n) if isinstance(n, int) and n < 10**6 else _significant(n, 4)


def format_bytes(n: float) -> str:
    """Bytes in binary units up to EiB, to 3 significant digits; any size."""
    exponent = min(max(int(n).bit_length() - 1, 0) // 10, 6)  # 1024**exponent <= n, capped at EiB
    unit = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")[exponent]
    value = n / 1024**exponent if n < 1e300 else decimal.Decimal(n) / 1024**exponent
    return f"{_significant(value, 3)} {unit}"


def format_seconds(t: float) -> str:
    for unit, seconds in (("years", 3.15e7), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if t >= seconds:
            return f"{t / seconds:.3g} {unit}"
    return f"{t:.3g} s"


def check_memory(what: str, estimate: float) -> None:
    """Raise `MemoryBudgetError` if `estimate` bytes exceed the budget."""
    budget = memory_budget()
    if estimate > budget:
        raise MemoryBudgetError(
            f"{what} needs an estimated {format_bytes(estimate)}, over the memory budget of "
            f"{format_bytes(budget)}. Use fewer sites or a smaller chunk_size, or raise the budget with "
            "ebmflow.set_memory_budget('32GiB') or the EBMFLOW_MEMORY_BUDGET environment variable."
        )


@functools.cache
def evaluation_rate() -> float:
    """This process's measured rate of stable ``ln 2cosh`` evaluations per second (one warm jitted pass of 2**20)."""
    import jax
    import jax.numpy as jnp

    from ._numerics import log_2cosh

    f = jax.jit(lambda x: log_2cosh(x).sum())
    x = jnp.linspace(-3.0, 3.0, 2**20, dtype=jnp.float32)
    f(x).block_until_ready()
    start = time.perf_counter()
    f(x).block_until_ready()
    return 2**20 / max(time.perf_counter() - start, 1e-9)


def check_states(what: str, states: int, work_per_state: int = 1, terms: str = "states") -> None:
    """Raise `ComputeBudgetError` if a sum over ``states`` states (or other ``terms``) exceeds the state budget.

    The message estimates the time from ``work_per_state`` elementwise evaluations per
    term (hidden units, quadrature nodes) at this machine's measured `evaluation_rate`.
    """
    budget = state_budget()
    if states > budget:
        seconds = float(min(states * max(work_per_state, 1), 10**300)) / evaluation_rate()
        raise ComputeBudgetError(
            f"{what} sums over {format_count(states)} {terms}, over the budget of {format_count(budget)} {terms} per "
            f"exact sum: at this machine's measured rate it would take roughly {format_seconds(seconds)} per pass. "
            "Use fewer sites, or raise the budget with ebmflow.set_state_budget(2**40) or the EBMFLOW_STATE_BUDGET "
            "environment variable."
        )
