"""Helpers of scripts/bench_gateway.py."""
