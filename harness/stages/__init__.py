"""The stages of a comparison, each reading and writing typed records: train/ (smoke-test SFT),
generate, checks, judge/, forgetting; and pipeline, which runs them in order through a run dir."""
