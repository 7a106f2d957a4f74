"""The verdict: statistics (the one place scipy is called), the run's statistics (stats.json) and the
release gates with their default policy. Pure functions over records; no engine, no stage, no I/O
beyond reading a policy file."""
