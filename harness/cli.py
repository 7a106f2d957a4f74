"""The `harness` command. Thin: parse arguments, call a stage, print (render/console.py), exit.

Exit codes: 0 pass (or a completed run without gates), 1 a gate failed,
2 bad input, 3 inconclusive or an infrastructure error.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from harness.errors import HarnessError
from harness.render.console import err, out, print_gates, print_result, print_training, progress_bar, tables_to_stderr

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compare a fine-tuned checkpoint with its base and gate the release.")
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
    checkpoints: Annotated[list[str], typer.Argument(
        help="The base (the reference), then one or more candidates: each a checkpoint YAML, a model directory "
        "or a hub id.", show_default=False)],
    plan: Annotated[Path | None,
                    typer.Option(help="Plan YAML (else the candidate's plan: block, else defaults).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where new run dirs are created.")] = Path("runs"),
    run_dir: Annotated[Path | None, typer.Option(help="Use (or resume) this run dir.")] = None,
    cache: Annotated[Path | None,
                     typer.Option(help="SQLite cache file (default: $HARNESS_CACHE_DIR/cache.sqlite).")] = None,
    policy: Annotated[Path | None,
                      typer.Option(help="Gate policy YAML (else the plan's gates:, else the default).")] = None,
    adapter: Annotated[str | None, typer.Option(help="A LoRA adapter (directory or hub id) for the candidate.")] = None,
    backend: Annotated[str | None, typer.Option(help="Engine for all: auto, vllm, transformers.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items of each suite and task.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a field: [base.|candidate.|plan.]field.path=value (YAML value); repeatable; "
        "without a prefix it applies to every checkpoint; candidate. applies to every candidate.")] = None,
    require: Annotated[str, typer.Option(help="With several candidates, what the exit code asks: all (every "
                                         "candidate passes its gates) or any (at least one does).")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print verdict.json on stdout; tables go to stderr.")] = False,
) -> None:
    """Run the checkpoints on the plan, gate each candidate against the base, write a run dir; the exit code
    is the verdict. With three or more, the run also ranks them (its judge's pairs, Bradley-Terry)."""
    from harness.errors import ConfigError
    from harness.records.manifest import CommandLine

    if len(checkpoints) < 2:
        raise ConfigError(None, "CHECKPOINTS", f"got {len(checkpoints)}; give a base and at least one candidate")
    if require not in ("all", "any"):
        raise ConfigError(None, "--require", f"{require!r}; expected all or any")
    if as_json:
        tables_to_stderr()
    asked = CommandLine(overrides=set_ or [], adapter=adapter, backend=backend, limit=limit)
    if len(checkpoints) > 2:
        _compare_group(checkpoints, plan, policy, asked, require, runs_dir, run_dir, cache, as_json)
    from harness.stages.pipeline import prepare, run_compare

    inputs = prepare(checkpoints[0], checkpoints[1], plan, policy, asked)
    with progress_bar() as progress:
        result = run_compare(inputs, runs_dir, run_dir, cache, progress=progress)
    print_result(result)
    if as_json:
        sys.stdout.write(result.verdict.model_dump_json(indent=2) + "\n")
    raise typer.Exit(result.decision.exit_code)


def _compare_group(checkpoints: list[str], plan: Path | None, policy: Path | None, asked: Any, require: str,
                   runs_dir: Path, run_dir: Path | None, cache: Path | None, as_json: bool) -> None:
    from harness.render.console import print_group
    from harness.stages.group import prepare_group, run_group

    group = prepare_group(checkpoints, plan, policy, asked, "any" if require == "any" else "all")
    with progress_bar() as progress:
        result = run_group(group, runs_dir, run_dir, cache, progress=progress)
    print_group(result)
    if as_json:
        sys.stdout.write(result.verdict.model_dump_json(indent=2) + "\n")
    raise typer.Exit(result.verdict.exit_code)


@app.command()
@guarded
def gate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run dir, or the directory of a finished run of "
                                            "several checkpoints.")],
    policy: Annotated[Path | None,
                      typer.Option(help="Gate policy YAML (else the run's plan gates, else the default).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print verdict.json on stdout; tables go to stderr.")] = False,
) -> None:
    """Re-decide a run's gates from its stored records (no model is loaded); rewrites verdict.json,
    junit.xml and summary.md (of every comparison, and the overall verdict, for a run of several
    checkpoints). Exit 0 pass, 1 fail, 2 bad input, 3 inconclusive."""
    from harness.records.group_results import GROUP
    from harness.render import console
    from harness.render.decision_files import regate

    if as_json:
        tables_to_stderr()
    if (run_dir / GROUP).is_file():  # a run of several checkpoints: each candidate, then the whole
        from harness.render.group_summary import regate_group

        _, whole = regate_group(run_dir, policy)
        console.print_group_verdict(whole)
        console.out.print(f"run dir: {run_dir}", highlight=False, soft_wrap=True)
        if as_json:
            sys.stdout.write(whole.model_dump_json(indent=2) + "\n")
        raise typer.Exit(whole.exit_code)
    run, outputs, _ = regate(run_dir, policy)
    print_gates(outputs.decision)
    console.out.print(f"run dir: {run.path}", highlight=False, soft_wrap=True)
    if as_json:
        sys.stdout.write(outputs.verdict.model_dump_json(indent=2) + "\n")
    raise typer.Exit(outputs.decision.exit_code)


@app.command()
@guarded
def demo(
    runs_dir: Annotated[Path, typer.Option(help="Where the run dir is created.")] = Path("runs"),
    overtrained: Annotated[bool, typer.Option(help="Compare the candidate trained far too hard instead "
                                              "(examples/sft-overtrained.yaml): its forgetting gate fails.")] = False,
    rebuild_base: Annotated[bool, typer.Option(help="Pretrain the demo base from its recipe (about two minutes) "
                                               "instead of using the shipped, sha256-pinned one.")] = False,
    loop: Annotated[bool, typer.Option(help="The preference loop: judge the SFT run, export its consistent "
                                       "verdicts as preference pairs, train a DPO candidate from the SFT checkpoint "
                                       "on them, then compare and rank base, SFT and DPO in one run.")] = False,
    llm_judge: Annotated[bool, typer.Option(help="Judge with the demo's LLM judge (examples/sft-llm-judge.yaml): "
                                            "a model trained for the demo world, served by vLLM on 127.0.0.1, "
                                            "scored on a gold set first.")] = False,
) -> None:
    """Build the embedded demo models (cached), train the candidate, compare and gate: no GPU, hub or key
    needed. The exit code is the verdict's."""
    from harness.demo.build import REBUILD_ENV, ensure_demo_models
    from harness.errors import ConfigError
    from harness.resources import shipped_dir
    from harness.stages.pipeline import prepare, run_compare

    if loop and (overtrained or llm_judge):  # before any model is built
        raise ConfigError(None, "--loop", "starts from the healthy SFT candidate, judged by the rules judge; "
                          f"leave out {'--overtrained' if overtrained else '--llm-judge'}")
    if overtrained and llm_judge:
        raise ConfigError(None, "--llm-judge", "judges the healthy SFT candidate; leave out --overtrained")
    examples = shipped_dir("examples")
    if rebuild_base:  # every `demo:base` of this process and its children means the rebuilt one
        os.environ[REBUILD_ENV] = "1"
    models = ensure_demo_models(progress=lambda msg: err.print(f"[dim]{msg}[/]"))
    err.print(f"[dim]demo models: {models.base.parent}[/]")
    if loop:
        from harness.demo.loop import run_loop
        from harness.render.console import print_group

        with progress_bar() as progress:
            looped = run_loop(runs_dir, progress, say=lambda line: err.print(f"[bold]{line}[/]", highlight=False))
        print_group(looped.group)
        err.print(f"[dim]preference pairs: {looped.preferences}; DPO checkpoint file: {looped.dpo_file}[/]")
        err.print(f"[dim]browse it: harness report {runs_dir}[/]")
        raise typer.Exit(looped.group.verdict.exit_code)
    candidate = "sft-overtrained.yaml" if overtrained else "sft-llm-judge.yaml" if llm_judge else "sft.yaml"
    inputs = prepare(examples / "base.yaml", examples / candidate)
    with progress_bar() as progress:
        result = run_compare(inputs, runs_dir, progress=progress)
    print_result(result)
    err.print(f"[dim]browse it: harness report {runs_dir}[/]")
    raise typer.Exit(result.decision.exit_code)


@app.command()
@guarded
def train(
    file: Annotated[Path, typer.Argument(help="Checkpoint YAML with a train: block.")],
    force: Annotated[bool, typer.Option(help="Retrain even when an up-to-date result exists.")] = False,
    cache: Annotated[Path | None, typer.Option(help="SQLite cache file (weight digests).")] = None,
) -> None:
    """Run (or reuse) the smoke-test SFT run of a checkpoint; exit 1 when the smoke verdict fails."""
    from harness.config.loading import load_checkpoint
    from harness.errors import ConfigError
    from harness.records.cache import Cache, default_cache_dir
    from harness.stages.train.sft import ensure_trained

    config = load_checkpoint(file)
    if config.train is None:
        raise ConfigError(str(file), "train", "this checkpoint has no train: block")
    db = Cache(cache or default_cache_dir() / "cache.sqlite")
    try:
        outcome = ensure_trained(config, str(file), db, force=force)
    finally:
        db.close()
    print_training(config.name, outcome.result, outcome.reused)
    typer.echo(f"checkpoint: {outcome.output_dir}")
    raise typer.Exit(0 if outcome.result.smoke.passed else 1)


@app.command()
@guarded
def validate(
    file: Annotated[Path, typer.Argument(help="A checkpoint, plan, policy, suite, judge, forgetting task or judge "
                                         "gold set file.")],
    kind: Annotated[str, typer.Option(help="checkpoint, plan, policy, suite, judge, task, gold, or auto.")] = "auto",
) -> None:
    """Check one file without loading any model (suites, forgetting tasks and training data it names included)."""
    from harness.stages.validate import validate_file

    typer.echo(f"ok: {file}: {validate_file(file, kind)}")



@app.command()
@guarded
def schema(
    kind: Annotated[str, typer.Argument(help="checkpoint, plan, policy or suite (input files); manifest, stats "
                                        "or verdict (the files a run writes); group, group-stats or group-verdict "
                                        "(those of a run of several checkpoints).")] = "checkpoint",
) -> None:
    """Print the JSON Schema of a file kind (editor completion, or a CI step that reads a run's files)."""
    from harness.config.schema import CheckpointConfig, PlanConfig, PolicyFile
    from harness.config.suites import SuiteFile
    from harness.errors import ConfigError
    from harness.records.group_results import GroupManifest, GroupStats, GroupVerdict
    from harness.records.manifest import Manifest
    from harness.records.run_results import RunStats, Verdict

    models: dict[str, Any] = {"checkpoint": CheckpointConfig, "plan": PlanConfig, "policy": PolicyFile,
                              "suite": SuiteFile, "manifest": Manifest, "stats": RunStats, "verdict": Verdict,
                              "group": GroupManifest, "group-stats": GroupStats, "group-verdict": GroupVerdict}
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
    from harness.engines.vllm_server import run_server, server_command
    from harness.stages.train.sft import checkpoint_to_serve

    command, env = server_command(file, host, port, None if dry_run else checkpoint_to_serve(file))
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] binding {host}: the server is reachable from other machines")
    if dry_run:
        out.print(" ".join(command), highlight=False, soft_wrap=True)
        return
    raise typer.Exit(run_server(command, env))


@app.command()
@guarded
def report(
    runs_dir: Annotated[Path,
                        typer.Argument(help="Directory that holds the run dirs (or one run dir).")] = Path("runs"),
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless --allow-remote.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    allow_remote: Annotated[bool, typer.Option(help="Allow a non-loopback --host (the report is then "
                                                    "reachable from other machines).")] = False,
) -> None:
    """Open the Streamlit report over the run dirs (read-only)."""
    from harness.report.launcher import report_command, run_report

    command, env = report_command(runs_dir, host, port, allow_remote)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"report on http://{shown}:{port} (Ctrl-C stops it)", highlight=False, markup=False)
    raise typer.Exit(run_report(command, env))


@app.command()
@guarded
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run dir.")],
    format_: Annotated[str, typer.Option(
        "--format", help="lm-eval: lm-evaluation-harness's results file of the forgetting tasks, one per checkpoint. "
        "alpaca-eval: AlpacaEval's model_outputs.json, one per checkpoint (with several samples per prompt, "
        "sample 0). table: one row per item x sample x checkpoint with the prompt, answer, each check "
        "(check.<name>), passed and the judge's outcome, as table.parquet and table.csv. preferences: the "
        "judge's consistent verdicts as a DPO dataset (prompt, chosen, rejected) in TRL's conversational form.")],
    out: Annotated[Path | None, typer.Option(help="Directory to write into (default: RUN_DIR/export).")] = None,
) -> None:
    """Write a finished run in another tool's format (no model is loaded); prints the paths written."""
    from harness.render.exports import export_run

    written = export_run(run_dir, format_, out)
    for path in written:
        typer.echo(str(path))
    if format_ == "preferences":  # what was left out, and why: the counts excluded.json keeps
        import json

        from harness.render.preferences import EXCLUDED, describe

        counts = next(path for path in written if path.as_posix().endswith(EXCLUDED))
        typer.echo(describe(json.loads(counts.read_text(encoding="utf-8"))), err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
