"""Rendering a run for people and CI: the number formats, the run's summary with summary.md and
junit.xml, the decision files written at the end of a run (and rewritten by `harness gate`), and the
tables the `harness` command prints."""
