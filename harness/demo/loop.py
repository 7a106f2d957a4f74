"""`harness demo --loop`: the preference loop on the embedded demo, offline.

1. The demo's SFT candidate against its base, judged (the demo run itself).
2. The judge's consistent verdicts of that run become preference pairs (`harness export --format
   preferences`), in the run's export/ dir.
3. A DPO candidate is trained from the SFT checkpoint on them. Its checkpoint file is written beside the
   data (export/preferences/demo-dpo.yaml): the SFT's checkpoint and plan, a `train:` block of method dpo.
4. Base, SFT and DPO are compared in one run with `pairs: all` (so SFT and DPO are judged against each
   other too) and ranked.

Every step is cached like any run: a second loop trains and generates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.config.loading import load_checkpoint
from harness.records.manifest import CommandLine
from harness.records.run_dir import atomic_write_text
from harness.render.exports import export_run
from harness.resources import shipped_dir
from harness.stages.group import GroupResult, prepare_group, run_group
from harness.stages.pipeline import CompareResult, Progress, prepare, run_compare

DPO_NAME = "demo-dpo"
DPO_TRAIN = {"method": "dpo", "format": "preference", "dpo": {"beta": 0.3}, "epochs": 1, "max_steps": 12,
             "learning_rate": 3.0e-5, "lr_scheduler": "cosine", "warmup_ratio": 0.05, "batch_size": 8,
             "max_length": 256, "seed": 0}
"""Sized to the few dozen pairs the demo's judge decides (44 here): about two passes over them. The chosen
answers are mostly the SFT's own, which it already rates at about -4 nats, so the smoke verdict's
near-reference bound is tight; at 5e-4 for 30 steps (eleven passes) the policy moved 568% of that and
failed, at 3e-5 it moves about half of it (README, "The preference loop")."""


@dataclass(frozen=True)
class LoopResult:
    first: CompareResult
    """Step 1: the SFT candidate against the base."""
    preferences: Path
    dpo_file: Path
    group: GroupResult
    """Step 4: base, SFT and DPO in one run."""


def dpo_checkpoint(sft_file: Path, sft_output: Path, preferences: Path) -> dict[str, object]:
    """The DPO candidate's checkpoint file: the SFT's engine, sampling and plan (absolute paths), trained from
    the SFT's weights on the exported pairs."""
    sft = load_checkpoint(sft_file)
    config = sft.model_dump(mode="json", exclude_unset=True, exclude={"train", "plan", "name"})
    plan = sft.plan.model_dump(mode="json", exclude_unset=True) if sft.plan is not None else None
    return {"name": DPO_NAME, **config,
            "train": {"base": str(sft_output.resolve()), "data": [str(preferences.resolve())], **DPO_TRAIN},
            **({"plan": plan} if plan is not None else {})}


def run_loop(runs_dir: Path, progress: Progress | None = None, say: Callable[[str], None] = lambda _: None,
             examples: Path | None = None) -> LoopResult:
    """`examples`: where base.yaml and sft.yaml are (the shipped examples by default; the robustness check
    gives copies with other seeds)."""
    examples = examples or shipped_dir("examples")
    base_file, sft_file = examples / "base.yaml", examples / "sft.yaml"
    say("loop 1/4: the SFT candidate against the base, judged")
    first = run_compare(prepare(base_file, sft_file), runs_dir, progress=progress)
    say("loop 2/4: the judge's consistent verdicts as preference pairs")
    written = export_run(first.run_dir, "preferences")
    preferences = next(p for p in written if p.suffix == ".jsonl")
    sft_output = Path(first.training["candidate"].output_dir or "")
    dpo_file = preferences.parent / f"{DPO_NAME}.yaml"
    atomic_write_text(dpo_file, "# Written by `harness demo --loop`: DPO from the demo SFT checkpoint on the pairs "
                      "its run's judge decided.\n" + yaml.safe_dump(dpo_checkpoint(sft_file, sft_output, preferences),
                                                                    sort_keys=False))
    say(f"loop 3/4 and 4/4: DPO trained from the SFT checkpoint ({dpo_file}), then base, SFT and DPO compared "
        "and ranked")
    group = prepare_group([str(base_file), str(sft_file), str(dpo_file)],
                          command_line=CommandLine(overrides=["plan.pairs=all"]))
    return LoopResult(first, preferences, dpo_file, run_group(group, runs_dir, progress=progress))
