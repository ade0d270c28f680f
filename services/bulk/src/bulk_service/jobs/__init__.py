"""The worker's work: running claimed jobs under a lease, and the periodic sweeps."""
