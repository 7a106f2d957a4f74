"""Numbers as people read them, the same in summary.md, the console and the report: rates as
percentages, differences in points, intervals, p-values ("n/a" for a missing value), and what
curation removed."""

from __future__ import annotations

from collections.abc import Sequence


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def delta_pts(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f} pts"


def ci_pts(ci: Sequence[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def ci_pts_raw(ci: Sequence[float | None]) -> str:
    return "n/a" if not ci or ci[0] is None or ci[1] is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def removed_summary(counts: dict[str, int]) -> str:
    """'exact_duplicate 3, too_long 1' (filters that removed something), or 'none'."""
    return ", ".join(f"{name} {n}" for name, n in counts.items() if n) or "none"
