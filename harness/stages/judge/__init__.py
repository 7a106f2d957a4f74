"""The pairwise judge: pairs and canaries (pairs), judge definitions and verdict parsing (prompt), LLM
calls (llm) in a sliding window (window), records in pair order (ledger), offline reference and rules judges
(offline), and the stage that runs them (stage)."""
