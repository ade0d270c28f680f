"""The notifier service: in-app, email and webhook notifications from the platform's events."""

__version__ = "0.1.0"
