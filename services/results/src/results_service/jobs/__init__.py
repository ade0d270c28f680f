"""Scheduled work of the results service (background services of the worker)."""
