"""Signing keys from PEM files: loading the configured set, and making a new key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from auth_service.domain.tokens import KeySet, public_jwk
from auth_service.settings import AuthSettings

DEV_KEY_PATH = ".run/keys/jwt-signing.pem"


@dataclass(frozen=True, slots=True)
class PublishedKeys:
    """The JWKS document as served, built once (the key set changes only with a restart)."""

    body: bytes


class SigningKeyError(RuntimeError):
    """The signing keys are missing or unusable; the service must not start."""


def _missing_key_message(settings: AuthSettings) -> str:
    if settings.environment == "production":
        return (
            "JWT_SIGNING_KEY_FILE is not set: production needs the Ed25519 signing key "
            "mounted from a secret (see docs/adr/0002-jwt-eddsa-and-key-rotation.md)."
        )
    return (
        "JWT_SIGNING_KEY_FILE is not set. Make a development key once with\n"
        f"    uv run python -m auth_service keygen {DEV_KEY_PATH}\n"
        f"and start with JWT_SIGNING_KEY_FILE={DEV_KEY_PATH}."
    )


def read_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key (tokens are EdDSA)")
    return key


def read_public_key(path: str | Path) -> Ed25519PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningKeyError(
            f"cannot read the previous public key {path}: {exc.strerror}"
        ) from exc
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def load_key_set(settings: AuthSettings) -> KeySet:
    """The configured keys, or :class:`SigningKeyError` saying what to do."""
    if not settings.jwt_signing_key_file:
        raise SigningKeyError(_missing_key_message(settings))
    current = read_private_key(settings.jwt_signing_key_file)
    previous = tuple(read_public_key(p) for p in settings.previous_public_key_paths)
    return KeySet(current=current, previous=previous)


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite, even if another process created the file a moment ago.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate_key_file(path: str | Path) -> tuple[str, bool]:
    """Writes a new Ed25519 key to ``path`` (0600) and its public key to ``path.pub``.

    Returns ``(kid, created)``. An existing file is never overwritten: its key
    is read and its kid returned with ``created=False``, so ``make run`` can
    call this every time.
    """
    target = Path(path)
    if target.exists():
        return public_jwk(read_private_key(target).public_key())["kid"], False
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        _write_new_file(target, private_pem, 0o600)
    except FileExistsError:
        return public_jwk(read_private_key(target).public_key())["kid"], False
    public_path = target.with_name(target.name + ".pub")
    if not public_path.exists():
        _write_new_file(public_path, public_key_pem(key), 0o644)
    return public_jwk(key.public_key())["kid"], True
