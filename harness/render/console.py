"""What the `harness` command prints: the result of a run (pass rates, checks, judge, forgetting,
changed answers, gates), a training run's smoke verdict, and the progress bar. Tables go to
stdout, warnings and progress to stderr; text from a run enters rich markup only escaped."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness.records.group_results import GroupVerdict
from harness.records.run_results import ForgettingStats, JudgeSummary, TrainingResult
from harness.render.formatting import ci_pts, ci_raw, delta_pts, fraction, p_value, pct, removed_summary, value
from harness.render.run_summary import gold_line, stopping_line
from harness.render.text import inert
from harness.verdict.gate import Decision

if TYPE_CHECKING:
    from harness.stages.group import GroupResult
    from harness.stages.pipeline import CompareResult


def _console(stderr: bool = False) -> Console:
    # Not a terminal (CI logs, pipes): rich would assume 80 columns and cut table cells short.
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=160 if wide else None)


out = _console()
err = _console(stderr=True)


def tables_to_stderr() -> None:
    """`--json`: stdout carries the verdict alone, so everything else the command prints goes to stderr."""
    global out
    out = err


def print_training(name: str, result: TrainingResult, reused: bool) -> None:
    smoke = result.smoke
    table = Table(title=f"smoke-test SFT of {name}: " + ("passed" if smoke.passed else "FAILED")
                  + (" (reused: inputs unchanged)" if reused else ""))
    for column in ("check", "result", "measured"):
        table.add_column(column)
    for c in smoke.checks:
        table.add_row(c.name, "[green]pass[/]" if c.passed else "[red]FAIL[/]", _escape(c.detail))
    out.print(table)
    data = result.data
    removed = removed_summary(data.curation)
    out.print(f"{result.steps} steps, {result.seconds} s, {result.tokens_per_second} tokens/s; "
              f"data: {data.rows} rows, curation removed {removed}, "
              f"{data.train} train / {data.validation} validation", highlight=False)
    template = result.preflight.get("training_template")
    if template:
        out.print(f"chat template trained: {template}", highlight=False)


def progress_bar() -> Any:
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar() -> Any:
        if not err.is_terminal:  # a CI log: one plain line per chunk instead of a bar nobody sees
            yield _plain_progress()
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=not err.is_terminal) as progress:
            tasks: dict[str, Any] = {}

            def advance(label: str, n: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total)
                progress.advance(tasks[label], n)
            yield advance
    return bar()


def _plain_progress() -> Any:
    import time

    started: dict[str, float] = {}
    done: dict[str, int] = {}

    def advance(label: str, n: int, total: int) -> None:
        started.setdefault(label, time.monotonic())
        done[label] = done.get(label, 0) + n
        elapsed = time.monotonic() - started[label]
        rate = f", {done[label] / elapsed:.1f}/s" if elapsed > 0 and done[label] else ""
        err.print(f"{_escape(label)}: {done[label]}/{total}{rate}, {elapsed:.0f} s elapsed", highlight=False,
                  soft_wrap=True)
    return advance


def print_result(result: CompareResult) -> None:
    names = {r: result.manifest.checkpoints[r].name for r in ("base", "candidate")}
    for role, training in result.training.items():
        print_training(names[role], training, bool(training.reused))
    table = Table(title="pass rates (all checks passed; paired on items checked on both sides)")
    for column in ("suite", "items", names["base"], names["candidate"], "delta", "95% CI", "p (Holm)"):
        table.add_column(column, justify="left" if column == "suite" else "right")
    for name, st in result.run_stats.suites.items():
        table.add_row(name, str(st.n), pct(st.base_rate), pct(st.candidate_rate), delta_pts(st.delta),
                      ci_pts(st.delta_ci), p_value(st.p_holm))
    out.print(table)
    checks = Table(title="checks (share of answers passing)")
    for column in ("suite", "check", names["base"], names["candidate"]):
        checks.add_column(column, justify="left" if column in ("suite", "check") else "right")
    for s in result.summary.suites:
        for name in sorted(set(s.base.checks) | set(s.candidate.checks)):
            checks.add_row(s.suite, name, pct(s.base.checks.get(name)), pct(s.candidate.checks.get(name)))
    out.print(checks)
    _print_judge(result.run_stats.judge)
    _print_forgetting(result.run_stats.forgetting, names)
    if result.summary.examples:
        shown = min(3, len(result.summary.examples))
        side = Table(title=f"answers that changed outcome ({shown} of {result.summary.changed})", show_lines=True)
        for column in ("item", names["base"], names["candidate"]):
            side.add_column(column, overflow="fold")
        for e in result.summary.examples[:3]:
            mark = {True: "[green]pass[/]", False: "[red]fail[/]"}
            side.add_row(f"{e.suite}/{e.item_id}", f"{mark[e.base_passed]} {_escape(e.base)}",
                         f"{mark[e.candidate_passed]} {_escape(e.candidate)}")
        out.print(side)
    for warning in result.summary.warnings:
        err.print(f"[bold yellow]warning:[/] {_escape(warning)}")
    stats = result.stats
    out.print(f"generations: {stats['generated']} generated, {stats['cached']} from cache", highlight=False)
    print_gates(result.decision)
    out.print(f"run dir: {result.run_dir}", highlight=False, soft_wrap=True)


def print_group(result: GroupResult) -> None:
    """Each comparison as a two-checkpoint run prints it, then the ranking and the verdict per candidate."""
    for comparison, compared in zip(result.manifest.comparisons, result.results):
        out.rule(_escape(f"{comparison.base} vs {comparison.candidate}"
                         + ("" if comparison.gated else " (for the ranking; ungated)")))
        print_result(compared)
    out.rule(_escape(f"{len(result.manifest.checkpoints)} checkpoints"))
    ranking = result.stats.ranking
    if ranking is not None:
        table = Table(title=f"ranking (Bradley-Terry on {ranking.games} judged pairs; strength: log-odds of "
                      f"beating {_escape(result.manifest.reference)})")
        for column in ("rank", "checkpoint", "strength", "95% CI", "wins", "losses", "ties"):
            table.add_column(column, justify="left" if column == "checkpoint" else "right")
        for k, c in enumerate(ranking.checkpoints, 1):
            low, high = c.strength_ci
            table.add_row(str(k), _escape(c.name), f"{c.strength:+.2f}", f"[{low:+.2f}, {high:+.2f}]", str(c.wins),
                          str(c.losses), str(c.ties))
        out.print(table)
    print_group_verdict(result.verdict)
    out.print(f"run dir: {result.path}", highlight=False, soft_wrap=True)


def print_group_verdict(verdict: GroupVerdict) -> None:
    style = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "ungated": "dim"}
    table = Table(title=f"verdict per candidate (require {verdict.require})")
    for column in ("candidate", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for v in verdict.candidates:
        table.add_row(_escape(v.name), f"[{style[v.outcome]}]{v.outcome}[/]", _escape(v.reason))
    out.print(table)
    out.print(f"verdict: [{style[verdict.outcome]}]{verdict.outcome.upper()}[/] (exit {verdict.exit_code}): "
              f"{_escape(verdict.reason)}", highlight=False, soft_wrap=True)


def print_gates(decision: Decision) -> None:
    style = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "skipped": "dim", "ungated": "dim"}
    if decision.gates:
        table = Table(title="release gates")
        for column in ("gate", "outcome", "value", "reason"):
            table.add_column(column, overflow="fold")
        for g in decision.gates:
            table.add_row(_escape(g.label), f"[{style[g.outcome]}]{g.outcome}[/]", value(g.value), _escape(g.reason))
        out.print(table)
    out.print(f"verdict: [{style[decision.outcome]}]{decision.outcome.upper()}[/] (exit {decision.exit_code}): "
              f"{_escape(decision.reason)}", highlight=False, soft_wrap=True)


def _print_judge(judge: JudgeSummary | None) -> None:
    if judge is None:
        return
    model = f", model {judge.model}" if judge.model else ", offline"
    out.print(f"judge {_escape(str(judge.judge))} ({judge.kind}{_escape(model)}): candidate wins {judge.wins}, "
              f"base wins {judge.losses}, ties {judge.ties} (inconsistent {judge.inconsistent}, "
              f"unparsed {judge.unparsed}, failed {judge.failed}); win rate {fraction(judge.win_rate)} "
              f"{ci_raw(judge.win_rate_ci)}; canaries won {judge.canaries.wins}/{judge.canaries.total}",
              highlight=False, soft_wrap=True)
    for line in (stopping_line(judge), gold_line(judge)):
        if line:
            out.print(_escape(line), highlight=False, soft_wrap=True)


def _print_forgetting(forgetting: ForgettingStats | None, names: dict[str, str]) -> None:
    if forgetting is None:
        return
    table = Table(title="forgetting (lm-eval accuracy, paired)")
    for column in ("task", "items", names["base"], names["candidate"], "delta", "95% CI", "p (Holm)", "flag"):
        table.add_column(column, justify="left" if column in ("task", "flag") else "right")
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for task, t in forgetting.tasks.items():
        table.add_row(task, str(t.n), pct(t.base_rate), pct(t.candidate_rate), delta_pts(t.delta),
                      ci_pts(t.delta_ci), p_value(t.p_holm), f"[{style[t.flag]}]{t.flag}[/]")
    out.print(table)


def _escape(text: str) -> str:
    """Run text in a rich string: its markup escaped, its control characters (ANSI escapes) visible."""
    from rich.markup import escape

    return escape(inert(text))
