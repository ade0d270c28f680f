"""Queries of the bulk service, one module per table family."""
