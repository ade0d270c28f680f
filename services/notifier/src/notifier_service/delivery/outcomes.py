"""What one send attempt came to, as the mailer and the webhook poster report it."""

from __future__ import annotations

from dataclasses import dataclass

from notifier_service.domain.retry import Failure, is_transient


@dataclass(frozen=True, slots=True)
class SendFailure:
    """A send that did not go through: the classified failure and a line for a person.

    ``detail`` is stored in ``deliveries.last_error`` and ``delivery_attempts.detail``;
    it names the reply code or the transport error, never the message, link or token.
    """

    failure: Failure
    detail: str

    @property
    def transient(self) -> bool:
        return is_transient(self.failure)
