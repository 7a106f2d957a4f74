"""The chat template smoke-test SFT trains with, chosen the way TRL chooses it.

Loss on assistant tokens only needs `{% generation %}` markers around assistant turns.
A template that has them trains as it is. Most released templates (Qwen2.5, Llama 3,
Gemma, Phi-3, ...) have none: for those, TRL's SFTTrainer swaps in its own training
copy of the stock template (`trl.chat_template_utils.get_training_chat_template`; the
`.jinja` files ship in `trl/chat_templates/`). This module asks TRL the same question
before any training, so that a template TRL cannot patch is refused with a config
error, and so that the run records which template trained. The trainer's choice is
checked against it (`confirm`), and the checkpoint keeps the stock template: TRL uses
the training copy for tokenizing only and never writes it into the tokenizer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError, InfraError

TOKENIZER, FILE = "tokenizer", "chat_template file"


@dataclass(frozen=True)
class TrainingTemplate:
    stock: str
    """The template the checkpoint generates with (the tokenizer's, or the checkpoint's chat_template file)."""
    patched: str | None
    """TRL's training copy that SFTTrainer tokenizes with, or None when the stock one has markers."""
    source: str
    """'tokenizer (has generation markers)', 'chat_template file (has generation markers)' or 'trl:FAMILY'."""

    @property
    def text(self) -> str:
        """The template the loss mask comes from."""
        return self.patched if self.patched is not None else self.stock

    def record(self) -> dict[str, str]:
        """What the run's train.json says about the template (under `preflight`)."""
        return {"training_template": self.source, "training_template_sha256": _sha256(self.text),
                "generation_template_sha256": _sha256(self.stock)}


def training_template(tok: Any, where: str, file: str, origin: str = TOKENIZER) -> TrainingTemplate:
    """The template TRL will train `tok` with; ConfigError (train.base) when there is none.

    where: the template's place for messages (the base dir, or the chat_template file)."""
    from trl import __version__ as trl_version
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    stock = getattr(tok, "chat_template", None)
    if not stock:
        raise ConfigError(file, "train.base", f"the tokenizer at {where} has no chat template to train with; "
                          "give the checkpoint a chat_template file whose assistant turns sit inside "
                          "{% generation %} ... {% endgeneration %}")
    if not isinstance(stock, str):  # named variants: TRL patches only the default one
        raise ConfigError(file, "train.base", f"the tokenizer at {where} has several named chat templates; "
                          "give the checkpoint a chat_template file to train and generate with")
    if has_generation_markers(stock):  # SFTTrainer's own test: it then trains with the template as it is
        return TrainingTemplate(stock, None, f"{origin} (has generation markers)")
    field = "chat_template" if origin == FILE else "train.base"
    try:
        patched = get_training_chat_template(tok)
    except ValueError:
        markers = "{% generation %} ... {% endgeneration %}"
        raise ConfigError(file, field, f"the chat template of {where} (sha256 {_sha256(stock)[:12]}) has no "
                          f"generation markers and TRL {trl_version} cannot patch it (it patches only the stock "
                          f"templates it ships: {', '.join(patchable_families())}); put {markers} around each "
                          "assistant turn and its end-of-turn token, or point the checkpoint's chat_template at "
                          "a copy that has them") from None
    if patched is None:  # only when markers are there, which was ruled out above
        raise InfraError(f"TRL {trl_version} found nothing to patch in a template without generation markers")
    return TrainingTemplate(stock, patched, f"trl:{_family(patched)}")


def confirm(template: TrainingTemplate, trainer: Any) -> None:
    """The trainer tokenized with the template this module chose (else the preflight and the
    record would describe another run than TRL's)."""
    used = getattr(trainer, "chat_template", None)
    if used != template.patched:
        raise InfraError(f"TRL's SFTTrainer chose another training template than {template.source}; this "
                         "harness does not support this TRL version's template handling")


def patchable_families() -> list[str]:
    """The template families whose stock template TRL can patch (one training template each)."""
    import trl.chat_template_utils as templates

    suffix = "_training_chat_template"
    return sorted(name.removesuffix(suffix) for name, value in vars(templates).items()
                  if name.endswith(suffix) and isinstance(value, str))


def _family(patched: str) -> str:
    import trl.chat_template_utils as templates

    suffix = "_training_chat_template"
    return next((name.removesuffix(suffix) for name, value in vars(templates).items()
                 if name.endswith(suffix) and value == patched), "unnamed")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
