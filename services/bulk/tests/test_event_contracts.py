"""bulk's event contracts: generated docs current, examples valid, and bulk's copies of the
chunk commands and readers of the answers compatible with their owners' models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import results_service.contracts as results
from bulk_service.contracts import MarkImportChunkV1, UserImportChunkV1
from bulk_service.messaging.answers import MarkChunkAnsweredV1
from bulk_service.messaging.catalog import EVENTS
from service_kit.messaging.docs import stale_event_docs, stale_message
from service_kit.messaging.events import Event, event_key, example_payload

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_committed_event_docs_are_what_the_catalog_generates() -> None:
    stale = stale_event_docs(EVENTS, REPO_ROOT)
    assert not stale, stale_message(stale)


def test_every_example_payload_is_valid_for_its_model() -> None:
    consumed = [e for s in EVENTS.consumes for e in s.events]
    for event in (*EVENTS.documented, *consumed):
        example = example_payload(event)
        assert event.model_validate(example).model_dump(mode="json") == example


def _same_message(ours: type[Event], theirs: type[Event]) -> None:
    assert event_key(ours) == event_key(theirs)
    assert ours.routing_key == theirs.routing_key
    assert ours.producer == theirs.producer == "bulk"


def test_bulks_mark_chunk_is_what_results_reads() -> None:
    _same_message(MarkImportChunkV1, results.MarkImportChunkV1)
    sent: dict[str, Any] = example_payload(MarkImportChunkV1)
    read = results.MarkImportChunkV1.model_validate(sent)
    assert read.rows[0].mark is not None and str(read.rows[0].mark) == sent["rows"][0]["mark"]
    assert set(MarkImportChunkV1.model_fields) == set(results.MarkImportChunkV1.model_fields)


def test_results_answer_parses_into_bulks_reader() -> None:
    producer = results.MarkImportChunkResultV1
    assert event_key(MarkChunkAnsweredV1) == event_key(producer)
    sent = producer.model_validate(example_payload(producer))
    read = MarkChunkAnsweredV1.model_validate(sent.model_dump(mode="json"))
    shared = set(MarkChunkAnsweredV1.model_fields) & set(producer.model_fields)
    assert shared == set(MarkChunkAnsweredV1.model_fields)
    assert read.errors[0].code == sent.errors[0].code


def test_bulks_user_chunk_is_what_auth_reads() -> None:
    auth = pytest.importorskip("auth_service.contracts")
    theirs = getattr(auth, "UserImportChunkV1", None)
    if theirs is None:
        pytest.fail("auth declares no UserImportChunkV1 (users.import_chunk)")
    _same_message(UserImportChunkV1, theirs)
    theirs.model_validate(example_payload(UserImportChunkV1))


def test_auths_answer_parses_into_bulks_reader() -> None:
    import auth_service.contracts as auth
    from bulk_service.messaging.answers import UserChunkAnsweredV1

    producer = auth.UserImportChunkResultV1
    assert event_key(UserChunkAnsweredV1) == event_key(producer)
    sent = producer.model_validate(example_payload(producer))
    read = UserChunkAnsweredV1.model_validate(sent.model_dump(mode="json"))
    assert set(UserChunkAnsweredV1.model_fields) <= set(producer.model_fields)
    assert (read.rows_ok, read.rows_failed) == (sent.rows_ok, sent.rows_failed)
