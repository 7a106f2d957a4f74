"""Numbers as people read them, the one formatter of summary.md, the console, junit.xml and the
report: rates as percentages, differences in points, plain fractions (win rates, gate values) to
three decimals, intervals, p-values ("n/a" for a missing value), and what curation removed."""

from __future__ import annotations

import math
from collections.abc import Sequence


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def pct(value: float | None) -> str:
    return "n/a" if value is None or _missing(value) else f"{100 * value:.1f}%"


def delta_pts(value: float | None) -> str:
    return "n/a" if value is None or _missing(value) else f"{100 * value:+.1f} pts"


def pts(value: float | None) -> str:
    """An unsigned spread (a standard error, a detectable effect) in percentage points."""
    return "n/a" if value is None or _missing(value) else f"{100 * value:.1f} pts"


def fraction(value: float | None) -> str:
    """A share or win rate as it is stored (0.625)."""
    return "n/a" if value is None or _missing(value) else f"{value:.3f}"


def loss(value: float | None) -> str:
    return "n/a" if value is None or _missing(value) else f"{value:.4f}"


def value(v: bool | float | None) -> str:
    """A gate's value or threshold: yes/no as true/false, numbers as fractions."""
    if isinstance(v, bool):
        return str(v).lower()
    return fraction(v)


def _interval(ci: Sequence[float | None] | None) -> tuple[float, float] | None:
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None or math.isnan(ci[0]) or math.isnan(ci[1]):
        return None
    return float(ci[0]), float(ci[1])


def ci_pts(ci: Sequence[float | None] | None) -> str:
    """An interval of a difference, in points."""
    span = _interval(ci)
    return "n/a" if span is None else f"[{100 * span[0]:+.1f}, {100 * span[1]:+.1f}]"


def ci_pct(ci: Sequence[float | None] | None) -> str:
    """An interval of a rate, in percent."""
    span = _interval(ci)
    return "n/a" if span is None else f"[{100 * span[0]:.1f}%, {100 * span[1]:.1f}%]"


def ci_raw(ci: Sequence[float | None] | None) -> str:
    """An interval of a fraction or gate value, as stored."""
    span = _interval(ci)
    return "n/a" if span is None else f"[{span[0]:.3f}, {span[1]:.3f}]"


def p_value(value: float | None) -> str:
    if value is None or _missing(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def removed_summary(counts: dict[str, int]) -> str:
    """'exact_duplicate 3, too_long 1' (filters that removed something), or 'none'."""
    return ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "none"
