"""The kinds of notification (API.md "Notifications") and the rules tied to a kind."""

from __future__ import annotations

from enum import StrEnum


class NotificationKind(StrEnum):
    """What a notification is about; the value is the `kind` field of the API."""

    RESULTS_PUBLISHED = "results_published"
    RESULTS_UPDATED = "results_updated"
    IMPORT_FINISHED = "import_finished"
    EXPORT_READY = "export_ready"
    ACCOUNT_INVITED = "account_invited"
    PASSWORD_RESET = "password_reset"


ALWAYS_EMAILED: frozenset[NotificationKind] = frozenset(
    {NotificationKind.ACCOUNT_INVITED, NotificationKind.PASSWORD_RESET}
)
"""Emailed whatever the user's preference: the email is the only way to the token
(an invited user cannot sign in to read an in-app notification, and a user who
forgot their password cannot either)."""

CARRIES_TOKEN: frozenset[NotificationKind] = frozenset(
    {NotificationKind.ACCOUNT_INVITED, NotificationKind.PASSWORD_RESET}
)
"""Kinds whose facts hold a secret, single-use token: it goes into the email link
only, never into an in-app notification, a webhook, a log line or a stored row."""


def should_email(kind: NotificationKind, *, email_preference: bool) -> bool:
    """Whether to email this notification to a user whose preference is `email_preference`.

    API.md: with `email: false` the user gets in-app notifications only, except
    for invitations and password resets, which are always emailed.
    """
    return email_preference or kind in ALWAYS_EMAILED


def carries_token(kind: NotificationKind) -> bool:
    """Whether notifications of this kind hold a secret token (see :data:`CARRIES_TOKEN`)."""
    return kind in CARRIES_TOKEN
