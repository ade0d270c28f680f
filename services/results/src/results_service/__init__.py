"""The results service: exams, marks, students read model, results and their publication."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("results-service")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
