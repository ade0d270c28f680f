"""``marks.changed``: the inputs of an exam's results changed (published by results).

Written to the outbox in the transaction that bumped the exam's
``marks_version``: after a batch of marks that changed at least one entry
(API or import), and after a PATCH that changed the exam's definition. The
debounced auto-regeneration consumes it; it regenerates when the exam's
``results_version`` is behind ``marks_version``, so duplicates and reordering
are harmless.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field
from service_kit.messaging.events import Event


class MarksChangedV1(Event):
    """The inputs of an exam's results changed; its `marks_version` grew.

    Written in the transaction that bumped `marks_version`: after a batch of
    marks (API or import) that changed at least one entry, and after a PATCH
    of the exam's definition. Regenerate when `results_version <
    marks_version`; duplicates and reordering are harmless. Read by results
    itself (debounced automatic regeneration).
    """

    event_type = "marks.changed"
    event_version = 1
    producer = "results"

    exam_id: uuid.UUID = Field(
        description="The exam whose results are now stale.",
        examples=["2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"],
    )
    marks_version: int = Field(
        ge=1,
        description="The exam's marks_version after the change; results reflecting an "
        "older version are stale.",
        examples=[7],
    )
    cause: Literal["marks", "definition"] = Field(
        description="`marks`: entries were written; `definition`: subjects, grading scale, "
        "pass_percent or rank_method changed.",
        examples=["marks"],
    )
    source: Literal["api", "import"] | None = Field(
        None,
        description="For `marks`: whether the API or a bulk import wrote them.",
        examples=["api"],
    )
    changed: int = Field(
        0,
        ge=0,
        description="For `marks`: how many (student, subject) entries changed.",
        examples=[120],
    )
    exam_published: bool = Field(
        description="True when the exam was already published: the regeneration must then "
        "publish `results.updated` for the students whose result changed.",
        examples=[False],
    )


MARKS_CHANGED_TYPE = MarksChangedV1.event_type
"""Its type, which is also its routing key (queue bindings name it)."""
