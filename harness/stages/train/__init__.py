"""Smoke-test SFT: the data and its formats (data), curation, the TRL run (sft) and its smoke verdict."""
