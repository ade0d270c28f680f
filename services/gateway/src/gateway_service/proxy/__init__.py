"""Forwarding to the upstreams: header rules, body limits, streaming, timeouts."""
