"""Causes: what a notification is about, as the key that makes it exactly one per user.

The notifier stores one notification per (user, cause), so the cause names
the thing that happened, never the message that told us: however often an
event is delivered, redelivered or replayed, it names the same cause. A token
(invitation, reset) is part of its cause only as a hash, so the key names one
invitation without holding its secret.
"""

from __future__ import annotations

import hashlib
import uuid


def results_published(exam_id: uuid.UUID) -> str:
    """An exam is published once."""
    return f"results.published:{exam_id}"


def results_updated(exam_id: uuid.UUID, generation: int) -> str:
    """Each generation that changed a published exam's results is a cause of its own."""
    return f"results.updated:{exam_id}:{generation}"


def job_completed(job_id: uuid.UUID) -> str:
    """A job ends once."""
    return f"bulk.job.completed:{job_id}"


def invitation(token: str) -> str:
    """One invitation (a new invitation of the same user has a new token)."""
    return f"user.invited:{_digest(token)}"


def password_reset(token: str) -> str:
    """One reset request (a newer request has a new token)."""
    return f"user.password_reset_requested:{_digest(token)}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]
