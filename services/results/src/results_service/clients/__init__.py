"""Clients of other services' internal APIs."""
