"""Settings (defaults, production refusals), signing-key loading and the command line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from auth_service.__main__ import main
from auth_service.domain.passwords import OWASP_MINIMUM, Argon2idHasher, Argon2Params
from auth_service.keys import SigningKeyError, generate_key_file, load_key_set
from auth_service.settings import AuthSettings, cgroup_cpu_limit
from pydantic import ValidationError

PRODUCTION_SECRETS = {
    "database_url": "postgresql+asyncpg://auth@db-rw:5432/erp",
    "rabbitmq_url": "amqp://auth:s3cret@rabbitmq:5672/",
    "admin_email": "it@school.example",
    "admin_password": "a long production password",
    "cursor_secret": "a long production cursor secret",
    "service_clients": {
        "results": {"secret_sha256": ["ab" * 32], "audiences": ["auth"]},
    },
}


def _settings(**values: object) -> AuthSettings:
    return AuthSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_hash_with_argon2id_at_the_owasp_minimum() -> None:
    settings = _settings()

    params = Argon2Params(
        settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
    )
    assert params == OWASP_MINIMUM == Argon2Params(memory_kib=19_456, time_cost=2, parallelism=1)
    encoded = Argon2idHasher(params).hash("correct horse battery")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # The CPUs this process may use, capped by a container's CPU limit (whole CPUs).
    usable, limit = len(os.sched_getaffinity(0)), cgroup_cpu_limit()
    assert settings.password_hash_workers == (usable if limit is None else min(usable, limit))
    assert settings.password_hash_queue_budget_seconds == 1.0
    assert settings.password_hash_max_queue == 128


def test_documented_defaults() -> None:
    settings = _settings()

    assert (settings.auth_host, settings.auth_port) == ("127.0.0.1", 8001)
    assert settings.access_token_ttl_seconds == 900
    assert settings.refresh_token_ttl_seconds == 1_209_600
    assert settings.invitation_ttl_seconds == 7 * 24 * 3600
    assert settings.login_max_failures_per_email == 5
    assert settings.login_failure_window_seconds == 900
    assert settings.login_max_attempts_per_ip == 60
    assert settings.login_ip_window_seconds == 60
    assert settings.trust_forwarded_for is True
    assert (settings.admin_email, settings.admin_password) == (
        "admin@example.edu",
        "admin-dev-password",
    )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_PORT", "9101")
    monkeypatch.setenv("LOGIN_MAX_ATTEMPTS_PER_IP", "7")
    monkeypatch.setenv("JWT_PREVIOUS_PUBLIC_KEY_FILES", "a.pem, b.pem,")
    monkeypatch.setenv("AUTH_DATABASE_REPLICA_URL", "postgresql+asyncpg://r/erp")
    monkeypatch.setenv("TRUST_FORWARDED_FOR", "false")

    settings = _settings()

    assert settings.auth_port == 9101
    assert settings.login_max_attempts_per_ip == 7
    assert settings.previous_public_key_paths == ["a.pem", "b.pem"]
    assert settings.database_replica_url == "postgresql+asyncpg://r/erp"
    assert settings.trust_forwarded_for is False


@pytest.mark.parametrize(
    "dev_default",
    [
        "admin_email",
        "admin_password",
        "database_url",
        "cursor_secret",
        "service_clients",
    ],
)
def test_production_refuses_development_secrets(dev_default: str) -> None:
    values = {k: v for k, v in PRODUCTION_SECRETS.items() if k != dev_default}

    with pytest.raises(ValidationError, match=dev_default.upper()):
        _settings(environment="production", **values)


def test_production_accepts_real_secrets() -> None:
    settings = _settings(environment="production", **PRODUCTION_SECRETS)

    assert settings.environment == "production"


def test_service_clients_come_as_json_with_hex_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SERVICE_CLIENTS",
        '{"bulk": {"secret_sha256": ["' + "AB" * 32 + '"], "audiences": ["auth", "results"]}}',
    )

    clients = _settings().service_clients

    assert clients["bulk"].secret_sha256 == ["ab" * 32]
    assert clients["bulk"].audiences == ["auth", "results"]


def test_service_clients_need_hex_digests() -> None:
    for broken in ({"secret_sha256": ["not-hex"], "audiences": []}, {"audiences": ["auth"]}):
        with pytest.raises(ValidationError):
            _settings(service_clients={"bulk": broken})


def test_admin_password_must_follow_the_password_policy() -> None:
    with pytest.raises(ValidationError, match="at least 10"):
        _settings(admin_password="short")


def test_development_without_a_key_refuses_to_start_and_says_how_to_make_one() -> None:
    with pytest.raises(SigningKeyError, match=r"python -m auth_service keygen \.run/keys"):
        load_key_set(_settings())


def test_production_without_a_key_refuses_to_start() -> None:
    with pytest.raises(SigningKeyError, match="production needs the Ed25519 signing key"):
        load_key_set(_settings(environment="production", **PRODUCTION_SECRETS))


def test_unusable_key_files_are_refused(tmp_path: Path) -> None:
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("hello")
    public_only = tmp_path / "k.pem"
    generate_key_file(public_only)

    for current, previous, message in [
        (tmp_path / "missing.pem", "", "cannot read"),
        (not_a_key, "", "not an unencrypted PEM private key"),
        (Path(f"{public_only}.pub"), "", "not an unencrypted PEM private key"),
        (public_only, str(not_a_key), "not a PEM public key"),
    ]:
        with pytest.raises(SigningKeyError, match=message):
            load_key_set(
                _settings(jwt_signing_key_file=str(current), jwt_previous_public_key_files=previous)
            )


def test_keygen_writes_a_private_key_once_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run" / "keys" / "jwt-signing.pem"

    assert main(["keygen", str(path)]) == 0
    first = path.read_bytes()
    assert main(["keygen", str(path)]) == 0

    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(f"{path}.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    out = capsys.readouterr().out
    assert "wrote Ed25519 key" in out
    assert "exists, left unchanged" in out
    keys = load_key_set(_settings(jwt_signing_key_file=str(path)))
    assert keys.current_kid in out


def test_serve_without_a_key_exits_with_the_keygen_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JWT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here

    assert main([]) == 2
    assert "auth_service keygen" in capsys.readouterr().err
