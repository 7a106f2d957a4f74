"""Resolve a checkpoint config into what engines need: local paths, a
fingerprint that identifies the weights, and a chat template that renders
each conversation exactly once.

The fingerprint goes into every cache key. Keys without the model serve one
model's answers as another's (lm-eval #4063), so it covers the config, the
tokenizer files, a digest of every weight file, the adapter and the revision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config.files import WEIGHT_SUFFIXES, compile_chat_template, trainer_file
from harness.config.schema import DEMO_SCHEME, CheckpointConfig
from harness.config.suites import Message
from harness.engines.base import ChatRequest
from harness.errors import ConfigError, InfraError
from harness.records.cache import Cache, content_key

METADATA_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
                  "tokenizer.model", "vocab.json", "merges.txt", "adapter_config.json")
# Trainer files (harness/config/files.py: TRAINER_FILES) do not change what the model generates, and
# some change every run (TRL's training_args.bin pickles the temp output path with the process id), so
# hashing them would give bit-identical weights a new fingerprint and miss the cache.


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def directory_fingerprint(path: Path, cache: Cache) -> dict[str, str]:
    """Digests of the files that define what a model or adapter directory generates: weights, config,
    tokenizer and template; never training arguments, optimizer state or logs."""
    parts: dict[str, str] = {}
    for file in sorted(path.iterdir()):
        if file.name in METADATA_FILES:
            parts[file.name] = sha256_file(file)
        elif file.suffix in WEIGHT_SUFFIXES and not trainer_file(file.name):
            parts[file.name] = cache.file_digest(file.resolve(), sha256_file)
    if not any(name.endswith(WEIGHT_SUFFIXES) for name in parts):
        raise ConfigError(None, None, f"{path} holds no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    return parts


@dataclass(frozen=True)
class RenderedPrompt:
    text: str | None
    token_ids: tuple[int, ...] | None
    hash: str


@dataclass
class ResolvedCheckpoint:
    config: CheckpointConfig
    file: str
    model_path: str
    """Local directory, or the model name an endpoint serves."""
    tokenizer_path: str | None
    fingerprint: str
    template_hash: str | None
    template_source: str
    """tokenizer, file (chat_template override) or server (the endpoint renders)."""
    tokenizer: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    def render(self, conversation: tuple[Message, ...], seed: int) -> tuple[ChatRequest, RenderedPrompt]:
        messages = tuple((m.role, m.content) for m in conversation)
        if self.tokenizer is None:  # the server applies its own template
            rendered = RenderedPrompt(None, None, content_key({"messages": messages}))
            return ChatRequest(messages, None, None, seed), rendered
        text = self.tokenizer.apply_chat_template(
            [{"role": r, "content": c} for r, c in messages], add_generation_prompt=True, tokenize=False)
        ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        rendered = RenderedPrompt(text, ids, hashlib.sha256(text.encode("utf-8")).hexdigest())
        return ChatRequest(messages, text, ids, seed), rendered


def local_model_dir(model: str, revision: str | None, file: str, field_name: str = "model") -> Path:
    """A demo name, a local directory or a hub id -> a directory of weights (building the demo if needed)."""
    if model.startswith(DEMO_SCHEME):
        from harness.demo.build import ensure_demo_models

        return Path(getattr(ensure_demo_models(), model[len(DEMO_SCHEME):]))
    path = Path(model)
    if path.is_dir():
        return path
    return _hub_snapshot(model, revision, file, field_name)


def _hub_snapshot(repo_id: str, revision: str | None, file: str, field_name: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise InfraError(f"huggingface_hub is needed to fetch {repo_id!r}: {exc}") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except RepositoryNotFoundError:
        raise ConfigError(file, field_name, f"hub model {repo_id!r} does not exist or is private") from None
    except LocalEntryNotFoundError:
        raise InfraError(f"{file}: {field_name}: {repo_id!r} is not a local directory and the hub "
                         "cannot be reached (offline?); download it first or give a local path") from None


def _load_tokenizer(path: str, config: CheckpointConfig, file: str) -> tuple[Any, str]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=config.engine.trust_remote_code)
    source, field = "tokenizer", "tokenizer" if config.tokenizer else "model"
    if config.chat_template is not None:
        tok.chat_template = Path(config.chat_template).read_text(encoding="utf-8")
        source, field = "file", "chat_template"
    if not getattr(tok, "chat_template", None):
        raise ConfigError(file, "chat_template", f"the tokenizer at {path} has no chat template; "
                          "give chat_template: PATH_TO_JINJA")
    # Compiled here as apply_chat_template compiles it: a syntax error is bad input, found before the run
    # dir exists (a hub tokenizer's template is first seen here; a local one was checked when read).
    templates = tok.chat_template if isinstance(tok.chat_template, dict) else {"default": tok.chat_template}
    for name, text in templates.items():
        where = f"of the tokenizer at {path}" if source == "tokenizer" else config.chat_template or ""
        compile_chat_template(str(text), file, field, where + (f" ({name})" if name != "default" else ""))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, source


def resolve_checkpoint(config: CheckpointConfig, file: str, cache: Cache) -> ResolvedCheckpoint:
    """Find the weights, fingerprint them and load the tokenizer (no model is loaded)."""
    if config.backend == "openai":
        assert config.endpoint is not None
        served = config.endpoint.model or config.model or config.name
        parts: dict[str, Any] = {"endpoint": config.endpoint.base_url, "model": served,
                                 "revision": config.revision}
        sent = config.endpoint.sampling_sent(served)
        if sent != ["temperature", "top_p", "seed"]:  # a setting not sent is not applied: other answers
            parts["sampling_sent"] = sent
        tok, source, tok_path = None, "server", None
        if config.endpoint.api == "completions":
            tok_path = config.tokenizer or config.model or served
            tok, source = _load_tokenizer(tok_path, config, file)
            parts["template"] = tok.chat_template
        return ResolvedCheckpoint(config, file, served, tok_path, content_key(parts),
                                  content_key({"t": tok.chat_template}) if tok else None, source, tok)
    if config.model is None:
        raise ValueError(f"{file}: checkpoint {config.name!r} must be trained before it is resolved")
    model_dir = local_model_dir(config.model, config.revision, file)
    tok_path = config.tokenizer or str(model_dir)
    tok, source = _load_tokenizer(tok_path, config, file)
    parts = {"model": directory_fingerprint(model_dir, cache), "revision": config.revision,
             "tokenizer": directory_fingerprint_light(Path(tok_path))}
    if config.adapter is not None:
        parts["adapter"] = directory_fingerprint(Path(config.adapter), cache)
    template_hash = hashlib.sha256(tok.chat_template.encode("utf-8")).hexdigest()
    parts["template"] = template_hash
    return ResolvedCheckpoint(config, file, str(model_dir), tok_path, content_key(parts),
                              template_hash, source, tok)


def directory_fingerprint_light(path: Path) -> dict[str, str]:
    """Tokenizer files only (a tokenizer dir may hold no weights)."""
    if not path.is_dir():
        return {"id": str(path)}
    return {f.name: sha256_file(f) for f in sorted(path.iterdir()) if f.name in METADATA_FILES}


def stop_token_ids(model_dir: str | Path, tokenizer: Any) -> list[int]:
    """The ids generation stops on: the generation config's eos ids and the tokenizer's eos. One rule
    for the transformers engine and for training's preflight (a Gemma ends its turn with
    <end_of_turn>, not its tokenizer's <eos>)."""
    from transformers import GenerationConfig

    ids: set[int] = set()
    try:
        eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    except OSError:  # no generation_config.json
        pass
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
