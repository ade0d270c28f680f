"""Consumers of this service (user events, mark import chunks) and their queues."""
