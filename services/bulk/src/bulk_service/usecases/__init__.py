"""bulk's use cases: one transaction each."""
