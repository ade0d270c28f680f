"""The notifier's readers parse what its producers really send (their own examples), so a
change on their side that breaks a reader fails here, not in production."""

from __future__ import annotations

import auth_service.contracts as auth
import pytest
from bulk_service.contracts.jobs import BulkJobCompletedV1 as BulkJobCompleted
from notifier_service.messaging import readers
from pydantic import BaseModel
from results_service.contracts.results_events import ResultsPublishedV1 as Published
from results_service.contracts.results_events import ResultsUpdatedV1 as Updated
from service_kit.messaging.events import Event, event_key, example_payload

AUTH = {event_key(e): e for e in auth.EVENTS.publishes}
PAIRS: list[tuple[type[Event], type[Event]]] = [
    (readers.UserCreatedV1, AUTH[("user.created", 1)]),
    (readers.UserUpdatedV1, AUTH[("user.updated", 1)]),
    (readers.UserInvitedV1, AUTH[("user.invited", 1)]),
    (readers.PasswordResetRequestedV1, AUTH[("user.password_reset_requested", 1)]),
    (readers.ResultsPublishedV1, Published),
    (readers.ResultsUpdatedV1, Updated),
    (readers.BulkJobCompletedV1, BulkJobCompleted),
]


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


@pytest.mark.parametrize(("reader", "producer"), PAIRS, ids=lambda m: m.__name__)
def test_a_reader_reads_its_producers_example(reader: type[Event], producer: type[Event]) -> None:
    assert event_key(reader) == event_key(producer)
    assert reader.producer == producer.producer
    assert reader.routing_key == producer.routing_key
    sent = producer.model_validate(example_payload(producer))
    read = reader.model_validate(sent.model_dump(mode="json"))
    shared = _fields(reader) & _fields(producer)
    assert shared == _fields(reader), "the reader reads a field its producer does not send"
    sent_json, read_json = sent.model_dump(mode="json"), read.model_dump(mode="json")
    for name in shared:
        if isinstance(read_json[name], list):
            # Recipients: the reader keeps fewer fields of each.
            assert len(read_json[name]) == len(sent_json[name])
            for mine, theirs in zip(read_json[name], sent_json[name], strict=True):
                assert mine.items() <= theirs.items()
        else:
            assert read_json[name] == sent_json[name], name
