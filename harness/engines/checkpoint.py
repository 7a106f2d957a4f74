"""Resolve a checkpoint config into what engines need: local paths, a
fingerprint that identifies the weights, and a chat template that renders
each conversation exactly once.

The fingerprint goes into every cache key. Keys without the model serve one
model's answers as another's (lm-eval #4063), so it covers the config, the
tokenizer files, a digest of every weight file, the adapter and the revision.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
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
                  "tokenizer.model", "vocab.json", "merges.txt", "adapter_config.json", "added_tokens.json")
TOKENIZERS = "tokenizer/v1"
"""Cache namespace: what loading a tokenizer found (its template's hash), by the digest of its files."""
RENDERED = "rendered/v1"
"""Cache namespace: a rendered prompt's hash, by tokenizer digest, template and messages."""
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
    preloaded_tokenizer: Any = field(default=None, repr=False)
    """The tokenizer, once loaded (`tokenizer` loads it on first use through `load_tokenizer`)."""
    load_tokenizer: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    tokenizer_digest: str | None = None
    """Digest of the tokenizer's files, its chat template override and transformers' version: equal digests
    render and tokenize alike. None when unknown (a hub id, remote code, an endpoint)."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def has_tokenizer(self) -> bool:
        """False when the server renders (an OpenAI-compatible chat endpoint); no tokenizer is loaded to tell."""
        return self.preloaded_tokenizer is not None or self.load_tokenizer is not None

    @property
    def tokenizer(self) -> Any:
        """Loaded on first use: an unchanged rerun served from the cache never needs it (nor transformers)."""
        if self.preloaded_tokenizer is None and self.load_tokenizer is not None:
            self.preloaded_tokenizer = self.load_tokenizer()
        return self.preloaded_tokenizer

    def render(self, conversation: tuple[Message, ...], seed: int) -> tuple[ChatRequest, RenderedPrompt]:
        return self.render_many([conversation], seed)[0]

    def render_many(self, conversations: Sequence[tuple[Message, ...]], seed: int,
                    memo: Cache | None = None) -> list[tuple[ChatRequest, RenderedPrompt]]:
        """Each conversation rendered with the chat template, then all tokenized in one batched call
        (the same ids as one call each, in half the time: a fast tokenizer encodes a batch in parallel).

        With `memo`, a prompt rendered before by a tokenizer of the same digest comes back as its hash alone
        (text and token ids None: `unrendered`), without loading the tokenizer; `render_many` without a memo
        renders it when an engine needs it."""
        messages = [tuple((m.role, m.content) for m in conversation) for conversation in conversations]
        if not self.has_tokenizer:  # the server applies its own template
            return [(ChatRequest(m, None, None, seed), RenderedPrompt(None, None, content_key({"messages": m})))
                    for m in messages]
        keys = ([content_key({"tokenizer": self.tokenizer_digest, "template": self.template_hash, "messages": m})
                 for m in messages] if memo is not None and self.tokenizer_digest else [])
        known = memo.get_many(RENDERED, keys) if memo is not None and keys else {}
        done = {i: (ChatRequest(m, None, None, seed), RenderedPrompt(None, None, known[k]))
                for i, (m, k) in enumerate(zip(messages, keys)) if k in known}
        todo = [i for i in range(len(messages)) if i not in done]
        if todo:
            texts = [str(self.tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in messages[i]],
                                                            add_generation_prompt=True, tokenize=False))
                     for i in todo]
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            for i, text, token_ids in zip(todo, texts, ids):
                rendered = RenderedPrompt(text, tuple(token_ids), hashlib.sha256(text.encode("utf-8")).hexdigest())
                done[i] = (ChatRequest(messages[i], text, rendered.token_ids, seed), rendered)
            if memo is not None and keys:
                memo.put_many(RENDERED, {keys[i]: done[i][1].hash for i in todo})
        return [done[i] for i in range(len(messages))]


def unrendered(request: ChatRequest) -> bool:
    """A prompt that render_many served from its memo by hash alone (a local engine needs it rendered)."""
    return request.prompt_text is None and request.prompt_token_ids is None


def local_model_dir(model: str, revision: str | None, file: str, field_name: str = "model") -> Path:
    """A demo name, a local directory or a hub id -> a directory of weights (building the demo if needed)."""
    if model == f"{DEMO_SCHEME}judge":  # shipped, verified; needs neither demo model
        from harness.demo.judge_weights import verify_shipped_judge

        return verify_shipped_judge()
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
    tokenizer_files = directory_fingerprint_light(Path(tok_path))
    parts = {"model": directory_fingerprint(model_dir, cache), "revision": config.revision,
             "tokenizer": tokenizer_files}
    if config.adapter is not None:
        parts["adapter"] = directory_fingerprint(Path(config.adapter), cache)
    digest = _tokenizer_digest(config, Path(tok_path), tokenizer_files)
    # A tokenizer with these files loaded before (and its template compiled): its template's hash is known,
    # and the tokenizer itself (transformers, torch: seconds) loads only if a prompt must be rendered.
    known = cache.get_many(TOKENIZERS, [digest]).get(digest) if digest else None
    tok, loader = None, None
    if known is not None:
        template_hash, source = str(known["template_hash"]), str(known["source"])
        loader = functools.partial(_tokenizer_only, tok_path, config, file)
    else:
        tok, source = _load_tokenizer(tok_path, config, file)
        template_hash = hashlib.sha256(tok.chat_template.encode("utf-8")).hexdigest()
        if digest:
            cache.put_many(TOKENIZERS, {digest: {"template_hash": template_hash, "source": source}})
    parts["template"] = template_hash
    return ResolvedCheckpoint(config, file, str(model_dir), tok_path, content_key(parts),
                              template_hash, source, tok, loader, digest)


def _tokenizer_only(path: str, config: CheckpointConfig, file: str) -> Any:
    return _load_tokenizer(path, config, file)[0]


def _tokenizer_digest(config: CheckpointConfig, path: Path, files: dict[str, str]) -> str | None:
    if not path.is_dir() or config.engine.trust_remote_code:  # a hub id, or code that no digest covers
        return None
    override = sha256_file(Path(config.chat_template)) if config.chat_template is not None else None
    return content_key({"files": files, "chat_template": override, "transformers": _transformers_version()})


@functools.cache
def _transformers_version() -> str | None:
    try:
        return metadata.version("transformers")
    except metadata.PackageNotFoundError:
        return None


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
