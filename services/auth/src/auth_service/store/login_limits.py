"""Sign-in limits in Redis: attempts per client address, failures per email.

Both are fixed windows that start with the first counted event (INCR, then
EXPIRE NX), so every replica shares one count. Admitting an attempt is one Lua
script (one round trip, atomic): it counts the attempt and reads both counts.

Redis being down must not stop people from signing in: the limiter then lets
attempts through, counts that in ``auth_login_limits_unavailable_total`` and
logs a warning (at most every ``_WARN_EVERY_SECONDS``, so an outage under
attack does not flood the logs).
Argon2id's cost and the gateway's own limits still slow a guesser meanwhile.

Password reset requests (``POST /auth/password/forgot``) are limited by the
same mechanism under a scope of their own (``scope="forgot"``): every request
counts as a "failure" of its email, so an email gets so many reset mails per
window, and its counts never mix with the sign-in counts (a user who just
failed to sign in five times is exactly the one who asks for a reset).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from auth_service.domain.users import email_key
from auth_service.metrics import LOGIN_LIMITS_UNAVAILABLE

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 30.0
_REDIS_DOWN = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    max_failures_per_email: int
    failure_window_seconds: int
    max_attempts_per_address: int
    address_window_seconds: int


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Literal["email", "address"]
    retry_after_seconds: int


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer to a sign-in attempt."""

    refusal: Refusal | None
    # Whether the email has counted failures a successful sign-in must clear.
    # True when unknown (Redis did not answer): then the success tries anyway.
    may_have_failures: bool


# KEYS[1] = attempts of the client address, KEYS[2] = failures of the email,
# ARGV[1] = address window in seconds. Returns the attempts so far (this one
# included), their TTL, the failures (0 if none) and their TTL.
_ADMIT = """
local attempts = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
local address_ttl = redis.call('TTL', KEYS[1])
local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
return {attempts, address_ttl, failures, redis.call('TTL', KEYS[2])}
"""


def address_bucket(address: str) -> str:
    """The unit an address limit applies to: the IPv4 address, or the IPv6 /64.

    One IPv6 host usually owns a whole /64; per-address counting would let it
    rotate through 2^64 addresses.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _email_key(email: str) -> str:
    # The canonical form, so that lookalikes of an address share its limit;
    # hashed: keeps email addresses out of Redis key names (and bounds their length).
    return hashlib.sha256(email_key(email).encode("utf-8")).hexdigest()[:32]


class LoginLimiter:
    def __init__(
        self, redis: Redis, key_prefix: str, limits: LoginLimits, *, scope: str = "login"
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}auth:{scope}:"
        self._scope = scope
        self._limits = limits
        self._last_warning = float("-inf")
        # EVALSHA; on NOSCRIPT (a restarted or flushed Redis) redis-py loads it and retries.
        self._admit = redis.register_script(_ADMIT)

    def _address_key(self, address: str) -> str:
        return f"{self._prefix}addr:{address_bucket(address)}"

    def _failures_key(self, email: str) -> str:
        return f"{self._prefix}fail:{_email_key(email)}"

    def _degraded(self, exc: BaseException) -> None:
        LOGIN_LIMITS_UNAVAILABLE.inc()
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("%s limits unavailable, letting requests through: %r", self._scope, exc)

    async def admit(self, address: str, email: str) -> Admission:
        """Counts an attempt from ``address``; refused if it or ``email`` is over its limit."""
        limits = self._limits
        try:
            attempts, address_ttl, failures, failures_ttl = await self._admit(
                keys=[self._address_key(address), self._failures_key(email)],
                args=[limits.address_window_seconds],
            )
        except _REDIS_DOWN as exc:
            self._degraded(exc)
            return Admission(refusal=None, may_have_failures=True)
        has_failures = int(failures) > 0
        if int(attempts) > limits.max_attempts_per_address:
            refusal = Refusal("address", _retry_after(address_ttl, limits.address_window_seconds))
        elif int(failures) >= limits.max_failures_per_email:
            refusal = Refusal("email", _retry_after(failures_ttl, limits.failure_window_seconds))
        else:
            refusal = None
        return Admission(refusal, may_have_failures=has_failures)

    async def failures_exceeded(self, email: str) -> Refusal | None:
        """A refusal if ``email`` has used up its failures (without counting an attempt)."""
        key = self._failures_key(email)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.ttl(key)
                failures, ttl = await pipe.execute()
        except _REDIS_DOWN as exc:
            self._degraded(exc)
            return None
        if failures is not None and int(failures) >= self._limits.max_failures_per_email:
            return Refusal("email", _retry_after(ttl, self._limits.failure_window_seconds))
        return None

    async def record_failure(self, email: str) -> None:
        key = self._failures_key(email)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self._limits.failure_window_seconds, nx=True)
                await pipe.execute()
        except _REDIS_DOWN as exc:
            self._degraded(exc)

    async def clear_failures(self, email: str) -> None:
        """Forgets the failures of ``email``.

        A sign-in calls it only when :meth:`admit` saw failures, saving a round
        trip on almost every success. A failure that a concurrent attempt
        records after that admit then stays counted: strict, never lenient,
        and the order of two concurrent attempts is arbitrary anyway.
        """
        try:
            await self._redis.delete(self._failures_key(email))
        except _REDIS_DOWN as exc:
            self._degraded(exc)


def _retry_after(ttl: int, window: int) -> int:
    # TTL is -1 if the key somehow has no expiry, -2 if it just vanished.
    return int(ttl) if int(ttl) > 0 else window
