"""What stages write and read: typed records, run dirs (manifest and run files), where a run ran, and
the content-addressed cache."""
