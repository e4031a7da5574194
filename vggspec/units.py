"""Counts and sizes as people read them: 1.936G MACs, 527.8 MiB, unknown as '?'.

    numbers --units--> text        (shared by the planner and every table)
"""

from __future__ import annotations

GIB = 1 << 30
MIB = 1 << 20


def format_bytes(count: int) -> str:
    """1.25 GiB, 58.2 MiB: a byte count as people read it."""
    return f"{count / GIB:.2f} GiB" if count >= GIB else f"{count / MIB:.1f} MiB"


def format_count(value: int | None, unit: str = "") -> str:
    """1,936,000,000 -> 1.936G: three decimals, so the paper's figures can be read off;
    None (an open input size) -> '?'."""
    if value is None:
        return "?"
    for scale, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if value >= scale:
            return f"{value / scale:.3f}{suffix}{unit}"
    return f"{value}{unit}"


def sum_or_none(values) -> int | None:
    """The sum, or None when any value is unknown."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)
