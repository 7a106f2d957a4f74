"""The `harness` command. Thin: parse arguments, call a stage, print, exit.

Exit codes: 0 pass (or a completed run without gates), 1 a gate failed,
2 bad input, 3 inconclusive or an infrastructure error.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from harness.errors import HarnessError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compare a fine-tuned checkpoint with its base and gate the release.")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """User mistakes and infrastructure failures become one line and an exit code."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarnessError as exc:
            typer.echo(f"error: {exc}", err=True)  # plain: one line, never wrapped
            raise typer.Exit(exc.exit_code) from None
    return wrapper  # type: ignore[return-value]


@app.command()
@guarded
def compare(
    base: Annotated[Path, typer.Argument(help="Checkpoint YAML of the base model.")],
    candidate: Annotated[Path, typer.Argument(help="Checkpoint YAML of the candidate.")],
    plan: Annotated[Path | None, typer.Option(help="Plan YAML (else the candidate's plan: block, else defaults).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where new run dirs are created.")] = Path("runs"),
    run_dir: Annotated[Path | None, typer.Option(help="Use (or resume) this run dir.")] = None,
    cache: Annotated[Path | None, typer.Option(help="SQLite cache file (default: $HARNESS_CACHE_DIR/cache.sqlite).")] = None,
) -> None:
    """Run both checkpoints on the plan's suites and write a run dir."""
    from harness.compare import prepare, run_compare

    inputs = prepare(base, candidate, plan)
    with _progress() as progress:
        result = run_compare(inputs, runs_dir, run_dir, cache, progress=progress)
    _print_result(result)


@app.command()
@guarded
def demo(
    runs_dir: Annotated[Path, typer.Option(help="Where the run dir is created.")] = Path("runs"),
) -> None:
    """Build the embedded demo models (cached) and compare them: no GPU, hub or key needed."""
    from harness.compare import prepare, run_compare
    from harness.config import PROJECT_ROOT
    from harness.demo.build import ensure_demo_models

    examples = PROJECT_ROOT / "examples"
    models = ensure_demo_models(progress=lambda msg: err.print(f"[dim]{msg}[/]"))
    err.print(f"[dim]demo models: {models.base.parent}[/]")
    inputs = prepare(examples / "base.yaml", examples / "sft.yaml")
    with _progress() as progress:
        result = run_compare(inputs, runs_dir, progress=progress)
    _print_result(result)


@app.command()
@guarded
def train(
    file: Annotated[Path, typer.Argument(help="Checkpoint YAML with a train: block.")],
    force: Annotated[bool, typer.Option(help="Retrain even when an up-to-date result exists.")] = False,
    cache: Annotated[Path | None, typer.Option(help="SQLite cache file (weight digests).")] = None,
) -> None:
    """Run (or reuse) the smoke-test SFT run of a checkpoint; exit 1 when the smoke verdict fails."""
    from harness.cache import Cache, default_cache_dir
    from harness.config import load_checkpoint
    from harness.errors import ConfigError
    from harness.train import ensure_trained

    config = load_checkpoint(file)
    if config.train is None:
        raise ConfigError(str(file), "train", "this checkpoint has no train: block")
    db = Cache(cache or default_cache_dir() / "cache.sqlite")
    try:
        outcome = ensure_trained(config, str(file), db, force=force)
    finally:
        db.close()
    _print_training(config.name, outcome.result, outcome.reused)
    typer.echo(f"checkpoint: {outcome.output_dir}")
    raise typer.Exit(0 if outcome.result["smoke"]["passed"] else 1)


def _print_training(name: str, result: dict[str, Any], reused: bool) -> None:
    smoke = result["smoke"]
    table = Table(title=f"smoke-test SFT of {name}: " + ("passed" if smoke["passed"] else "FAILED")
                  + (" (reused: inputs unchanged)" if reused else ""))
    for column in ("check", "result", "measured"):
        table.add_column(column)
    for c in smoke["checks"]:
        table.add_row(c["name"], "[green]pass[/]" if c["passed"] else "[red]FAIL[/]", _escape(c["detail"]))
    out.print(table)
    data = result["data"]
    from harness.sftdata import removed_summary

    removed = removed_summary(data["curation"])
    out.print(f"{result['steps']} steps, {result['seconds']} s, {result['tokens_per_second']} tokens/s; "
              f"data: {data['rows']} rows, curation removed {removed}, "
              f"{data['train']} train / {data['validation']} validation", highlight=False)


@app.command()
@guarded
def validate(
    file: Annotated[Path, typer.Argument(help="A checkpoint, plan or suite file.")],
    kind: Annotated[str, typer.Option(help="checkpoint, plan, suite, or auto.")] = "auto",
) -> None:
    """Check one file without loading any model."""
    from harness.config import load_checkpoint, load_plan
    from harness.errors import ConfigError
    from harness.suites import load_suite, load_suites
    from harness.yamlio import read_yaml

    if kind == "auto":
        kind = _guess_kind(file, read_yaml)
    if kind == "checkpoint":
        config = load_checkpoint(file)
        if config.plan is not None:
            load_suites(config.plan.suites, str(file))
        source = config.model or f"trained from {config.train.base if config.train else '?'}"
        detail = f"checkpoint {config.name!r} ({source}, backend {config.backend})"
    elif kind == "plan":
        plan = load_plan(file)
        detail = f"plan with {len(load_suites(plan.suites, str(file)))} suite(s)"
    elif kind == "suite":
        suite = load_suite(file)
        detail = f"suite {suite.name!r} with {len(suite.items)} items"
    else:
        raise ConfigError(None, "--kind", f"unknown kind {kind!r}; expected checkpoint, plan, suite or auto")
    typer.echo(f"ok: {file}: {detail}")


def _guess_kind(file: Path, read_yaml: Callable[[Path], Any]) -> str:
    if file.suffix == ".jsonl":
        return "suite"
    data = read_yaml(file)
    if isinstance(data, dict) and "items" in data:
        return "suite"
    if isinstance(data, dict) and {"model", "train", "name", "backend"} & set(data):
        return "checkpoint"
    return "plan"


@app.command()
@guarded
def schema(
    kind: Annotated[str, typer.Argument(help="checkpoint, plan or suite.")] = "checkpoint",
) -> None:
    """Print the JSON Schema of a file kind (for editor completion)."""
    from harness.config import CheckpointConfig, PlanConfig
    from harness.errors import ConfigError
    from harness.suites import SuiteFile

    models: dict[str, Any] = {"checkpoint": CheckpointConfig, "plan": PlanConfig, "suite": SuiteFile}
    if kind not in models:
        raise ConfigError(None, "kind", f"unknown kind {kind!r}; expected one of: {', '.join(models)}")
    sys.stdout.write(json.dumps(models[kind].model_json_schema(), indent=2) + "\n")


@app.command()
@guarded
def serve(
    file: Annotated[Path, typer.Argument(help="Checkpoint YAML to serve.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless you mean otherwise.")] = "127.0.0.1",
    dry_run: Annotated[bool, typer.Option(help="Print the server command instead of running it.")] = False,
) -> None:
    """Start vLLM's OpenAI-compatible server for a checkpoint."""
    from harness.serve import run_server, server_command

    command, env = server_command(file, host, port, train=not dry_run)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] binding {host}: the server is reachable from other machines")
    if dry_run:
        out.print(" ".join(command), highlight=False, soft_wrap=True)
        return
    raise typer.Exit(run_server(command, env))


def _progress() -> Any:
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar() -> Any:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=not err.is_terminal) as progress:
            tasks: dict[str, Any] = {}

            def advance(label: str, n: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total)
                progress.advance(tasks[label], n)
            yield advance
    return bar()


def _print_result(result: Any) -> None:
    from harness.summary import delta_pts, pct

    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    names = {r: manifest["checkpoints"][r]["name"] for r in ("base", "candidate")}
    for role, training in result.training.items():
        _print_training(names[role], training, training["reused"])
    table = Table(title="pass rates (all checks passed)")
    for column in ("suite", "answers", names["base"], names["candidate"], "delta"):
        table.add_column(column, justify="left" if column == "suite" else "right")
    for s in result.summary.suites:
        table.add_row(s.suite, str(s.base.answers), pct(s.base.pass_rate), pct(s.candidate.pass_rate),
                      delta_pts(s.delta))
    out.print(table)
    checks = Table(title="checks (share of answers passing)")
    for column in ("suite", "check", names["base"], names["candidate"]):
        checks.add_column(column, justify="left" if column in ("suite", "check") else "right")
    for s in result.summary.suites:
        for name in sorted(set(s.base.checks) | set(s.candidate.checks)):
            checks.add_row(s.suite, name, pct(s.base.checks.get(name)), pct(s.candidate.checks.get(name)))
    out.print(checks)
    if result.summary.examples:
        side = Table(title="answers that changed outcome", show_lines=True)
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
    out.print(f"generations: {stats['generated']} generated, {stats['cached']} from cache; "
              f"verdict: {result.verdict['outcome']}", highlight=False)
    out.print(f"run dir: {result.run_dir}", highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
