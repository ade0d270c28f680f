"""The auth service: users, password sign-in, access and refresh tokens, JWKS."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("auth-service")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
