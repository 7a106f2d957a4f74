"""Configuration: the pydantic models of every input file (checkpoints, plans, policies, suites and
their checks) and reading them, with one-line errors that name the file and the field."""
