"""The public gateway of the exam-results platform."""

__version__ = "0.1.0"
