"""Numbers as people read them, the one formatter of summary.md, the console, junit.xml and the
report: rates as percentages, differences in points, plain fractions (win rates, gate values) to
three decimals, intervals, p-values ("n/a" for a missing value), and what curation removed; and, for the
report's tables, which hold numbers, the printf-style column format of each of these kinds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


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


# Table columns ------------------------------------------------------------------------------
# The report's tables hold numbers and leave the drawing to the grid (Streamlit's
# NumberColumn(format=...), which formats with sprintf-js). Each kind below is the column form of
# the text formatter of the same name above: a column holds the stored value times `scale`, and
# `printf % (scale * value)` prints exactly what that formatter prints (tests/test_report.py checks
# it), so a table and summary.md show the same digits. A missing value is drawn as MISSING (the
# grid's placeholder). What still differs: a p-value under 0.0005 is 0.000 in a column, not
# "<0.001", and a value exactly halfway in binary (0.0625 to three decimals) is rounded half away
# from zero by the grid (0.063) and half to even here (0.062).

MISSING = "n/a"
"""What every formatter above prints for a missing value, and what the report's grid draws for one."""

ColumnKind = Literal["pct", "delta_pts", "pts", "fraction", "loss", "p_value", "count"]


@dataclass(frozen=True)
class ColumnFormat:
    """How a table column holds and draws one kind of number."""

    scale: float
    """What the stored value is multiplied by in the column (100: a fraction becomes percent or points)."""
    printf: str
    """printf-style format of the scaled value, as Streamlit's NumberColumn takes it."""
    unit: str
    """What the column's numbers are in, for its header tooltip ("" when they are as stored)."""


COLUMN_FORMATS: dict[ColumnKind, ColumnFormat] = {
    "pct": ColumnFormat(100.0, "%.1f%%", "percent"),  # pct(): 71.2%
    "delta_pts": ColumnFormat(100.0, "%+.1f pts", "percentage points"),  # delta_pts(): +10.0 pts
    "pts": ColumnFormat(100.0, "%.1f pts", "percentage points"),  # pts(): 2.7 pts
    "fraction": ColumnFormat(1.0, "%.3f", ""),  # fraction() and value(): 0.625
    "loss": ColumnFormat(1.0, "%.4f", ""),  # loss(): 1.1000
    "p_value": ColumnFormat(1.0, "%.3f", ""),  # p_value(): 0.500
    "count": ColumnFormat(1.0, "%d", ""),  # whole numbers, as str() prints them
}


def column_format(kind: ColumnKind) -> ColumnFormat:
    """The column form of a kind of number: its scale and printf-style format (see COLUMN_FORMATS)."""
    return COLUMN_FORMATS[kind]
