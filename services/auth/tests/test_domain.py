"""Pure units: tokens and key ids, password and user rules, cursors, client addresses."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import uuid
from datetime import UTC, datetime

import jwt
import pytest
from auth_service.api.client_address import client_address, first_forwarded_address
from auth_service.api.users import _email_key
from auth_service.domain.passwords import Argon2idHasher, Argon2Params, password_problems
from auth_service.domain.tokens import (
    KeySet,
    TokenPolicy,
    issue_access_token,
    jwk_thumbprint,
    new_secret_token,
    public_jwk,
    token_digest,
)
from auth_service.domain.users import (
    Role,
    User,
    clean_student_number,
    role_change_problems,
    student_number_problems,
)
from auth_service.hashing import PasswordHashing
from auth_service.store.login_limits import address_bucket
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st
from service_kit.cursors import CursorCodec
from service_kit.errors import BadRequest

TINY = Argon2Params(memory_kib=64, time_cost=1, parallelism=1)


def _b64(raw: str) -> bytes:
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


def test_kid_is_the_rfc_7638_thumbprint_of_the_rfc_8037_example_key() -> None:
    # RFC 8037, appendix A.2 (public key) and A.3 (its JWK thumbprint).
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    public = Ed25519PublicKey.from_public_bytes(_b64(x))

    jwk = public_jwk(public)

    assert jwk["x"] == x
    assert jwk["kid"] == jwk_thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_key_set_publishes_current_then_previous_without_duplicates() -> None:
    current, old = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = KeySet(current, (old.public_key(), current.public_key(), old.public_key()))

    kids = [k["kid"] for k in keys.jwks()["keys"]]

    assert kids == [public_jwk(current.public_key())["kid"], public_jwk(old.public_key())["kid"]]


def test_access_token_claims() -> None:
    keys = KeySet(Ed25519PrivateKey.generate())
    user_id, sid = uuid.uuid4(), uuid.uuid4()

    token = issue_access_token(
        keys,
        TokenPolicy("iss-x", "aud-y", 900),
        user_id=user_id,
        role="examiner",
        email="e@x.edu",
        session_id=sid,
        access_epoch=3,
        now=1_000,
    )

    claims = jwt.decode(
        token.token,
        keys.current.public_key(),
        algorithms=["EdDSA"],
        audience="aud-y",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "sub": str(user_id),
        "role": "examiner",
        "email": "e@x.edu",
        "sid": str(sid),
        "access_epoch": 3,
        "iss": "iss-x",
        "aud": "aud-y",
        "iat": 1_000,
        "exp": 1_900,
        "jti": token.token_id,
    }
    assert jwt.get_unverified_header(token.token)["kid"] == keys.current_kid
    assert token.expires_in == 900


def test_secret_tokens_have_256_bits_and_are_stored_as_sha256() -> None:
    tokens = {new_secret_token() for _ in range(100)}

    assert len(tokens) == 100
    assert all(len(_b64(t)) == 32 for t in tokens)
    token = tokens.pop()
    assert token_digest(token) == hashlib.sha256(token.encode()).digest()


def test_password_policy() -> None:
    assert password_problems("p", "x" * 10) == []
    assert [d.code for d in password_problems("p", "x" * 9)] == ["PASSWORD_TOO_SHORT"]
    assert [d.code for d in password_problems("p", "x" * 1025)] == ["PASSWORD_TOO_LONG"]
    assert password_problems("new_password", "")[0].field == "new_password"


def test_hasher_verifies_flags_rehash_and_fails_the_dummy() -> None:
    hasher = Argon2idHasher(TINY)
    encoded = hasher.hash("correct horse")

    assert hasher.verify(encoded, "correct horse").ok
    assert not hasher.verify(encoded, "wrong horse").ok
    assert not hasher.verify(None, "correct horse").ok  # the dummy never matches
    assert not hasher.verify("not a hash", "x").ok
    stronger = Argon2idHasher(Argon2Params(memory_kib=128, time_cost=1, parallelism=1))
    assert stronger.verify(encoded, "correct horse").needs_rehash
    assert not hasher.verify(encoded, "correct horse").needs_rehash


def test_student_number_rules() -> None:
    assert clean_student_number("  S-1 ") == "S-1"
    assert clean_student_number("   ") is None
    assert student_number_problems(Role.STUDENT, "S-1") == []
    assert [d.code for d in student_number_problems(Role.STUDENT, None)] == ["REQUIRED"]
    assert [d.code for d in student_number_problems(Role.STUDENT, "x" * 65)] == ["TOO_LONG"]
    assert [d.code for d in student_number_problems(Role.ADMIN, "S-1")] == ["NOT_ALLOWED"]
    assert student_number_problems(Role.EXAMINER, None) == []


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        (Role.ADMIN, Role.EXAMINER, True),
        (Role.EXAMINER, Role.ADMIN, True),
        (Role.STUDENT, Role.STUDENT, True),
        (Role.STUDENT, Role.ADMIN, False),
        (Role.EXAMINER, Role.STUDENT, False),
    ],
)
def test_role_changes_never_cross_the_student_boundary(
    before: Role, after: Role, allowed: bool
) -> None:
    user = User(
        id=uuid.uuid4(),
        email="u@x.edu",
        full_name="U",
        role=before,
        student_number="S-1" if before is Role.STUDENT else None,
        active=True,
        created_at=datetime.now(UTC),
        version=1,
    )

    assert (role_change_problems(user, after) == []) is allowed


USERS_PAGES = CursorCodec("test-cursor-secret-0123456789").scoped("users", Role.STUDENT, None)


# Any canonical email (at most 254 octets): arbitrary text up to that size in UTF-8,
# not 300 characters (up to 1,200 octets, past the kit's cursor cap).
@given(st.text(max_size=254).filter(lambda key: len(key.encode()) <= 254))
def test_users_cursors_round_trip_any_sort_key(key: str) -> None:
    assert USERS_PAGES.decode(USERS_PAGES.encode([key]), _email_key) == key


@pytest.mark.parametrize("key", [[], [1], ["a", "b"]])
def test_users_cursors_of_another_shape_are_bad_requests(key: list[str | int]) -> None:
    with pytest.raises(BadRequest):
        USERS_PAGES.decode(USERS_PAGES.encode(key), _email_key)


def test_client_address_from_forwarded_for_or_peer() -> None:
    assert first_forwarded_address("203.0.113.7, 10.0.0.1") == "203.0.113.7"
    assert first_forwarded_address(" 2001:db8::1 ") == "2001:db8::1"
    assert first_forwarded_address("unknown, 10.0.0.1") is None
    assert first_forwarded_address(None) is None
    assert client_address("203.0.113.7", "10.0.0.9", trust_forwarded_for=True) == "203.0.113.7"
    assert client_address("203.0.113.7", "10.0.0.9", trust_forwarded_for=False) == "10.0.0.9"
    assert client_address("garbage", "10.0.0.9", trust_forwarded_for=True) == "10.0.0.9"
    assert client_address(None, None, trust_forwarded_for=True) == "unknown"


def test_ipv6_clients_are_limited_per_64_prefix() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2")
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_bucket("203.0.113.7") == "203.0.113.7"


async def test_hashing_runs_off_the_event_loop_in_a_bounded_pool() -> None:
    hashing = PasswordHashing(TINY, workers=2)
    threads: set[str] = set()
    real_hash = hashing._hasher.hash

    def spy(password: str) -> str:
        threads.add(threading.current_thread().name)
        return real_hash(password)

    hashing._hasher.hash = spy  # type: ignore[method-assign]
    try:
        hashes = await asyncio.gather(*(hashing.hash(f"password {n}") for n in range(8)))
    finally:
        hashing.close()

    assert len(set(hashes)) == 8
    assert threads and all(name.startswith("argon2") for name in threads)
    assert len(threads) <= 2
    assert threading.main_thread().name not in threads
