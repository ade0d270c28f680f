"""results' event contracts: the generated docs are current, examples valid, readers compatible."""

from __future__ import annotations

from pathlib import Path

import auth_service.contracts as auth
from results_service.contracts import MarkImportChunkV1
from results_service.messaging.auth_events import UserCreatedV1, UserUpdatedV1
from results_service.messaging.catalog import EVENTS
from service_kit.messaging.docs import stale_event_docs, stale_message
from service_kit.messaging.events import event_key, example_payload

REPO_ROOT = Path(__file__).resolve().parents[4]


def test_committed_event_docs_are_what_the_catalog_generates() -> None:
    stale = stale_event_docs(EVENTS, REPO_ROOT)
    assert not stale, stale_message(stale)


def test_every_example_payload_is_valid_for_its_model() -> None:
    consumed = [e for s in EVENTS.consumes for e in s.events]
    for event in (*EVENTS.documented, *consumed):
        example = example_payload(event)
        assert event.model_validate(example).model_dump(mode="json") == example


def test_the_import_chunk_command_is_bulks_and_addressed_to_results() -> None:
    assert MarkImportChunkV1.producer == "bulk"
    assert MarkImportChunkV1.routing_key == "results.marks.import_chunk"
    assert MarkImportChunkV1 in EVENTS.defines


def test_auths_user_events_parse_into_results_readers_of_the_same_type_and_version() -> None:
    published = {event_key(e): e for e in auth.EVENTS.publishes}
    for reader in (UserCreatedV1, UserUpdatedV1):
        producer_model = published[event_key(reader)]
        assert reader.producer == producer_model.producer == "auth"
        sent = producer_model.model_validate(example_payload(producer_model))
        read = reader.model_validate(sent.model_dump(mode="json"))
        shared = set(reader.model_fields) & set(producer_model.model_fields)
        assert shared == set(reader.model_fields), "the reader reads a field auth does not send"
        assert read.model_dump(include=shared) == sent.model_dump(include=shared)
