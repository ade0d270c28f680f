"""The revocation list every token verifier holds (service_kit.revocations, docs/adr/0011)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from service_kit.errors import ErrorCode, Unauthorized, UpstreamUnavailable
from service_kit.revocations import (
    RevocationFeed,
    RevocationList,
    RevocationRecord,
    http_revocation_source,
)
from service_kit.security import JwksKeyStore, TokenVerifier
from test_security import AUDIENCE, ISSUER, KeyRing, sign


def _at(offset_seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() + offset_seconds, UTC)


class Feed:
    """auth's feed in memory; ``failing`` makes a poll raise, ``calls`` records cursors."""

    def __init__(self) -> None:
        self.records: list[RevocationRecord] = []
        self.calls: list[int] = []
        self.failing = False

    def add(self, user_id: uuid.UUID, *, expires_in: float = 900, **scope: object) -> None:
        self.records.append(
            RevocationRecord(
                seq=len(self.records) + 1, user_id=user_id, expires_at=_at(expires_in), **scope
            )
        )

    async def __call__(self, after: int) -> RevocationFeed:
        self.calls.append(after)
        if self.failing:
            raise ConnectionError("auth is down")
        # Like auth, it may repeat a record it gave before (the cursor is conservative).
        start = max(0, after - 1)
        return RevocationFeed(revocations=self.records[start:], next_after=len(self.records))


@pytest.fixture
def feed() -> Feed:
    return Feed()


@pytest.fixture
def revocations(feed: Feed) -> RevocationList:
    return RevocationList(feed, max_staleness_seconds=60)


async def test_before_the_first_sync_nothing_is_vouched_for(revocations: RevocationList) -> None:
    with pytest.raises(UpstreamUnavailable):
        revocations.check(uuid.uuid4(), None, 0)
    with pytest.raises(UpstreamUnavailable):
        await revocations.ready()


async def test_a_revoked_session_is_refused_and_others_are_not(
    feed: Feed, revocations: RevocationList
) -> None:
    user, gone, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    feed.add(user, session_id=gone)

    await revocations.sync()

    with pytest.raises(Unauthorized) as caught:
        revocations.check(user, str(gone), 0)
    assert caught.value.code is ErrorCode.AUTH_TOKEN_INVALID
    revocations.check(user, str(kept), 0)
    revocations.check(user, None, 0)
    revocations.check(user, "not-a-uuid", 0)


async def test_an_epoch_ends_lower_epochs_of_that_user_only(
    feed: Feed, revocations: RevocationList
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    feed.add(user, min_access_epoch=2)
    feed.add(user, min_access_epoch=1)  # an older record arriving late lowers nothing

    await revocations.sync()

    for epoch in (0, 1):
        with pytest.raises(Unauthorized):
            revocations.check(user, None, epoch)
    revocations.check(user, None, 2)
    revocations.check(other, None, 0)


async def test_polls_continue_from_the_cursor_and_records_seen_twice_change_nothing(
    feed: Feed, revocations: RevocationList
) -> None:
    user = uuid.uuid4()
    feed.add(user, session_id=uuid.uuid4())
    await revocations.sync()
    feed.add(user, min_access_epoch=1)
    await revocations.sync()
    await revocations.sync()

    assert feed.calls == [0, 1, 2]
    with pytest.raises(Unauthorized):
        revocations.check(user, None, 0)


async def test_expired_records_are_forgotten(feed: Feed, revocations: RevocationList) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    feed.add(user, session_id=session, expires_in=-1)  # every token it could end has expired
    feed.add(user, min_access_epoch=1, expires_in=-1)

    await revocations.sync()

    revocations.check(user, str(session), 0)


async def test_a_failed_poll_keeps_what_is_known_until_it_is_too_old(
    feed: Feed, revocations: RevocationList
) -> None:
    user, session = uuid.uuid4(), uuid.uuid4()
    feed.add(user, session_id=session)
    await revocations.sync()
    feed.failing = True

    with pytest.raises(ConnectionError):
        await revocations.sync()

    with pytest.raises(Unauthorized):
        revocations.check(user, str(session), 0)
    revocations.check(user, str(uuid.uuid4()), 0)
    revocations._synced_at = time.monotonic() - 61  # past max_staleness_seconds
    with pytest.raises(UpstreamUnavailable):
        revocations.check(user, str(uuid.uuid4()), 0)
    feed.failing = False
    await revocations.sync()
    revocations.check(user, str(uuid.uuid4()), 0)


async def test_load_swallows_a_failure_and_the_job_polls_on(
    feed: Feed, revocations: RevocationList
) -> None:
    feed.failing = True
    await revocations.load()  # no exception: the process starts, unready

    job = revocations.sync_job(0.5)

    assert job.interval_seconds == 0.5
    assert job.once_across_replicas is False  # every process keeps its own list


async def test_the_verifier_checks_cached_tokens_against_new_revocations(feed: Feed) -> None:
    """A token verified (and cached) before its revocation is refused after it."""
    ring = KeyRing()
    ring.add("k1")
    revocations = RevocationList(feed, max_staleness_seconds=60)
    verifier = TokenVerifier(
        JwksKeyStore(ring.fetch, cache_seconds=300), ISSUER, AUDIENCE, revocations=revocations
    )
    user, session = uuid.uuid4(), uuid.uuid4()
    token = sign(ring.keys["k1"], "k1", sub=str(user), sid=str(session), access_epoch=4)
    await revocations.sync()
    principal = await verifier.verify(token)
    assert principal.access_epoch == 4 and principal.session_id == str(session)

    feed.add(user, session_id=session)
    await revocations.sync()

    with pytest.raises(Unauthorized):
        await verifier.verify(token)


async def test_the_http_source_reads_auths_feed() -> None:
    user = uuid.uuid4()
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "revocations": [
                    {
                        "seq": 7,
                        "user_id": str(user),
                        "session_id": None,
                        "min_access_epoch": 3,
                        "expires_at": _at(600).isoformat(),
                    }
                ],
                "next_after": 1234,
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        source = http_revocation_source(client, "http://auth.test/")
        feed = await source(99)

    assert str(seen[0].url) == "http://auth.test/internal/revocations?after=99"
    assert feed.next_after == 1234
    assert feed.revocations[0].min_access_epoch == 3


async def test_the_http_source_raises_on_a_refusal() -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(401, json={"error": {}}))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.HTTPStatusError):
            await http_revocation_source(client, "http://auth.test")(0)
