"""A plan as the command line adjusts it: `--set plan.field=value` overrides and `--limit N`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.config.loading import apply_overrides, resolve_plan_paths
from harness.config.schema import PlanConfig
from harness.config.suites import Suite
from harness.config.yamlio import validate


def with_plan_overrides(plan: PlanConfig, overrides: Sequence[tuple[str, Any]]) -> PlanConfig:
    """The plan with `--set plan.<field>=value` applied (paths relative to the current directory)."""
    if not overrides:
        return plan
    raw = apply_overrides(plan.model_dump(mode="json", exclude_unset=True), overrides)
    return validate(PlanConfig, resolve_plan_paths(raw, Path.cwd()), "--set", "plan")


def limit_plan(plan: PlanConfig, limit: int | None) -> PlanConfig:
    """`--limit N` also caps every forgetting task at its first N items."""
    if limit is None or plan.forgetting is None:
        return plan
    forgetting = plan.forgetting.model_copy(update={"limit": min(limit, plan.forgetting.limit or limit)})
    return plan.model_copy(update={"forgetting": forgetting})


def limit_suite(suite: Suite, limit: int | None) -> Suite:
    """The suite's first N items (the file's hash still names the whole file it came from)."""
    return suite if limit is None else dataclasses.replace(suite, items=suite.items[:limit])
