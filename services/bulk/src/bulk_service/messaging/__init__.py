"""bulk's consumers and its readers of other services' events."""
