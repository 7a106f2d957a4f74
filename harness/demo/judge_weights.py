"""The shipped demo judges (harness/demo/judges/VARIANT): where they are, their pinned digests, and the check
before use. Apart from judge_build.py (which trains them on the judge stage's prompts) so that resolving
`demo:judge` (engines.checkpoint) reaches no stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness.demo.build import verify_pinned

Variant = Literal["balanced", "a_better"]
VARIANTS: tuple[Variant, ...] = ("balanced", "a_better")
SHIPPED_JUDGES = Path(__file__).with_name("judges")
SHIPPED_JUDGE_SEED = 0
# The shipped judges' files as the project's build wrote them (recipe JUDGE_VERSION, seed
# SHIPPED_JUDGE_SEED; 806 s and 875 s on two cores). Checked before every use: a damaged install is an
# error, never a silent rebuild. Only their weights differ from CPU to CPU when rebuilt, as the base's do.
SHIPPED_JUDGE_SHA256: dict[Variant, dict[str, str]] = {
    "balanced": {
        "chat_template.jinja": "9004e47826820aa877aa73310843012c34d2a3c0cf4b65d852c8700cebd1f5eb",
        "config.json": "56e5dcfc3dc061c2f86fee7e28a634603778f191686cf1a809f6aee7fa9d4c6f",
        "generation_config.json": "45f272d7a90a6b7192fb94e86f63ecd84d283e46406171ec1b39ab05091d4494",
        "model.safetensors": "4833b2526c5b96789d045ece136eb823845b4bc3bddb5f0a7226e368176a50d1",
        "tokenizer.json": "41fd6ea88ef3032aaa6f6133ec9e302fb6265a474d8d763087131f19ae3215e2",
        "tokenizer_config.json": "86bc286e915042026fb93e41412711b4064a8b820eeac2bfe0149936c63a5ec1",
        "train_log.json": "5e9ab01fb0e7d614afdaeb6ec8cef3cc6f3e67d5486ea7866b8d9b6e541f3d2e",
    },
    "a_better": {
        "chat_template.jinja": "9004e47826820aa877aa73310843012c34d2a3c0cf4b65d852c8700cebd1f5eb",
        "config.json": "56e5dcfc3dc061c2f86fee7e28a634603778f191686cf1a809f6aee7fa9d4c6f",
        "generation_config.json": "45f272d7a90a6b7192fb94e86f63ecd84d283e46406171ec1b39ab05091d4494",
        "model.safetensors": "94e6d988bfccd64b46439655ac2bdaac0901269d55da383720a028ca536b13ed",
        "tokenizer.json": "3c5d1f359582a7126884dca291e5ab7e7295312895c3ab31d89b57a99e20fb0b",
        "tokenizer_config.json": "86bc286e915042026fb93e41412711b4064a8b820eeac2bfe0149936c63a5ec1",
        "train_log.json": "49f5451a07e6c52643b38efaa5c4af1092eabf3909cf788e3c98da4e7cbaf47b",
    },
}


def verify_shipped_judge(variant: Variant = "balanced") -> Path:
    """The shipped judge's dir, once every file matches its pinned sha256."""
    return verify_pinned(SHIPPED_JUDGES / variant, SHIPPED_JUDGE_SHA256[variant], "demo judge",
                         "`python -m harness.demo.judge_build --rebuild`")
