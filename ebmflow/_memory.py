"""Memory budget: refuse exact sums that cannot fit, before allocating anything."""

import os
import re

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_budget: int | None = None


class MemoryBudgetError(ValueError):
    """An exact computation would need more memory than the budget allows."""


def parse_bytes(size: int | str) -> int:
    """`8GiB`, `500MB`, `1e9` or a positive int -> bytes."""
    accepted = "use a positive size such as 8GiB, 500MB or a number of bytes"
    if isinstance(size, int):
        number = size
    else:
        match = re.fullmatch(r"\s*([0-9.]+(?:E[+-]?[0-9]+)?)\s*((?:[KMGT]I?)?B)?\s*", str(size).upper())
        if match is None:
            raise ValueError(f"cannot read memory size {size!r}; {accepted}")
        number = int(float(match.group(1)) * _UNITS[match.group(2) or ""])
    if number <= 0:
        raise ValueError(f"memory size must be positive; got {size!r}: {accepted}")
    return number


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_budget() -> int:
    """The budget in bytes: `set_memory_budget`, else `$EBMFLOW_MEMORY_BUDGET`, else half of RAM."""
    if _budget is not None:
        return _budget
    env = os.environ.get("EBMFLOW_MEMORY_BUDGET")
    return parse_bytes(env) if env else _physical_memory() // 2


def set_memory_budget(size: int | str | None) -> None:
    """Set the memory budget for exact sums (bytes or a string like `"16GiB"`); None restores the default."""
    global _budget
    _budget = None if size is None else parse_bytes(size)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError


def check_fits(what: str, estimate: float) -> None:
    """Raise `MemoryBudgetError` if `estimate` bytes exceed the budget."""
    budget = memory_budget()
    if estimate > budget:
        raise MemoryBudgetError(
            f"{what} needs an estimated {format_bytes(estimate)}, over the memory budget of "
            f"{format_bytes(budget)}. Use fewer spins or a smaller chunk_size, or raise the budget with "
            "ebmflow.set_memory_budget('32GiB') or the EBMFLOW_MEMORY_BUDGET environment variable."
        )
