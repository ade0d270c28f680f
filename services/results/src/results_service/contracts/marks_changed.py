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

from pydantic import BaseModel, ConfigDict, Field

MARKS_CHANGED_TYPE = "marks.changed"
MARKS_CHANGED_VERSION = 1


class MarksChangedV1(BaseModel):
    """Data of ``marks.changed`` v1 (routing key ``marks.changed``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    exam_id: uuid.UUID = Field(description="The exam whose results are now stale.")
    marks_version: int = Field(
        ge=1,
        description="The exam's marks_version after the change; results reflecting an "
        "older version are stale.",
    )
    cause: Literal["marks", "definition"] = Field(
        description="`marks`: entries were written; `definition`: subjects, grading scale, "
        "pass_percent or rank_method changed."
    )
    source: Literal["api", "import"] | None = Field(
        None, description="For `marks`: whether the API or a bulk import wrote them."
    )
    changed: int = Field(
        0, ge=0, description="For `marks`: how many (student, subject) entries changed."
    )
    exam_published: bool = Field(
        description="True when the exam was already published: the regeneration must then "
        "publish `results.updated` for the students whose result changed."
    )
