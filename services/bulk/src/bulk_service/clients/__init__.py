"""bulk's clients of other services' internal endpoints."""
