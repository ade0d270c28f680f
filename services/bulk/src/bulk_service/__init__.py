"""The bulk service: imports of marks and users from CSV and Excel, and results exports."""

__version__ = "0.1.0"
