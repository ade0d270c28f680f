"""What a notification says, for a person: in-app and email renderings of each kind.

Every kind has its own facts (a frozen dataclass, filled by the consumer from
the event and the notifier's read models). One draft per kind is rendered two
ways:

- :func:`in_app` -> :class:`InApp` (title, body, data) is stored and streamed.
  It never holds a token: an invitation or reset tells the user to look in
  their email, with no link, since a stored row, the stream and the API are
  all places a secret must not reach (a link to `/reset-password` without
  the token would lead nowhere).
- :func:`email` -> :class:`Email` (subject, plain text, HTML) holds the full
  link under `FRONTEND_URL`, the token included and URL-encoded.

Links follow the frontend's routes in API.md: `/accept-invitation?token=`,
`/reset-password?token=`, `/exams/<exam id>/results`, `/jobs/<job id>`.
Every value from outside (names, exam names) is text: it is escaped in HTML,
so a student named `<script>` stays a name.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import assert_never
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from notifier_service.domain.facts import (
    _FACTS_OF,
    AccountInvited,
    DataValue,
    ExportReady,
    Facts,
    ImportFinished,
    JobStatus,
    PasswordReset,
    ResultsPublished,
    ResultsUpdated,
)
from notifier_service.domain.kinds import NotificationKind

# -- renderings ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One notification for a person: what both renderings are made of."""

    title: str
    text: str
    """Plain text body (paragraphs separated by blank lines, the link on its own line)."""
    html: str
    """HTML body: every outside value escaped."""
    link: str | None
    """The full URL under `FRONTEND_URL` (with the token for a token kind); None if none."""


@dataclass(frozen=True, slots=True)
class InApp:
    """The stored notification's `title`, `body` and `data` (API.md). Never a token."""

    title: str
    body: str
    data: dict[str, DataValue]


@dataclass(frozen=True, slots=True)
class Email:
    """An email: subject, plain text and HTML alternatives, with the full link."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class _Link:
    label: str
    route: str
    token: str | None = None
    """Secret: goes into the query of the email link only."""


@dataclass(frozen=True, slots=True)
class _Draft:
    title: str
    paragraphs: tuple[str, ...]
    link: _Link | None
    data: dict[str, DataValue]
    """Facts for a client, in-app only: ids and names, never a token."""


def in_app(kind: NotificationKind, facts: Facts) -> InApp:
    """The in-app notification: no token; the link, if any, is `data["link"]`, a frontend route."""
    draft = _draft(kind, facts)
    paragraphs = draft.paragraphs
    data = dict(draft.data)
    if draft.link is not None and draft.link.token is not None:
        # The route alone would lead nowhere; the token reaches the user by email only.
        paragraphs = (*paragraphs, "The link is in the email we sent you.")
    elif draft.link is not None:
        data["link"] = draft.link.route
    return InApp(title=_one_line(draft.title), body="\n\n".join(paragraphs), data=data)


def email(kind: NotificationKind, facts: Facts, frontend_url: str) -> Email:
    """The email, whose link is `frontend_url` + the route (+ `?token=` for a token kind)."""
    message = email_message(kind, facts, frontend_url)
    return Email(subject=message.title, text=message.text, html=message.html)


def email_message(kind: NotificationKind, facts: Facts, frontend_url: str) -> Message:
    """The email's :class:`Message`, with the full link (token included)."""
    draft = _draft(kind, facts)
    greeting = f"Hello {facts.recipient_name},"
    draft = _Draft(draft.title, (greeting, *draft.paragraphs), draft.link, draft.data)
    link = None
    if draft.link is not None:
        query = {"token": draft.link.token} if draft.link.token is not None else {}
        link = frontend_link(frontend_url, draft.link.route, query)
    return _render(draft, link)


def frontend_link(frontend_url: str, route: str, query: dict[str, str] | None = None) -> str:
    """`frontend_url` + `route` (+ the query, URL-encoded).

    A base with a path (`https://school.example/portal`) keeps it; a base with
    a query or fragment, or not http(s), is refused: the link would be wrong.
    """
    base = urlsplit(frontend_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ValueError("FRONTEND_URL must be an absolute http:// or https:// URL")
    if base.query or base.fragment:
        raise ValueError("FRONTEND_URL must not have a query or a fragment")
    path = base.path.rstrip("/") + route
    return urlunsplit((base.scheme, base.netloc, path, urlencode(query or {}), ""))


def _render(draft: _Draft, link: str | None) -> Message:
    text = list(draft.paragraphs)
    markup = [f"<p>{html.escape(p)}</p>" for p in draft.paragraphs]
    if link is not None and draft.link is not None:
        text.append(f"{draft.link.label}: {link}")
        href = html.escape(link, quote=True)
        markup.append(f'<p><a href="{href}">{html.escape(draft.link.label)}</a></p>')
    return Message(
        title=_one_line(draft.title), text="\n\n".join(text), html="\n".join(markup), link=link
    )


def _one_line(title: str) -> str:
    # A line break from an exam name would be refused in a Subject header (or, by
    # a lax mailer, start a new header): a title is one line.
    return " ".join(title.split())


def _draft(kind: NotificationKind, facts: Facts) -> _Draft:
    if not isinstance(facts, _FACTS_OF[kind]):
        raise TypeError(f"{kind} takes {_FACTS_OF[kind].__name__}, not {type(facts).__name__}")
    match facts:
        case ResultsPublished():
            return _published(facts)
        case ResultsUpdated():
            return _updated(facts)
        case ImportFinished():
            return _import_finished(facts)
        case ExportReady():
            return _export_ready(facts)
        case AccountInvited():
            return _invited(facts)
        case PasswordReset():
            return _reset(facts)
        case _:
            assert_never(facts)


def _exam_route(exam_id: uuid.UUID) -> str:
    return f"/exams/{quote(str(exam_id), safe='')}/results"


def _job_route(job_id: uuid.UUID) -> str:
    return f"/jobs/{quote(str(job_id), safe='')}"


def _exam_data(exam_id: uuid.UUID, exam_code: str, exam_name: str) -> dict[str, DataValue]:
    return {"exam_id": str(exam_id), "exam_code": exam_code, "exam_name": exam_name}


def _published(f: ResultsPublished) -> _Draft:
    return _Draft(
        title=f"Results published: {f.exam_name}",
        paragraphs=(
            f"The results of {f.exam_name} ({f.exam_code}) are published. "
            "You can see your marks, total, grade and rank on the exam's results page.",
        ),
        link=_Link("See your results", _exam_route(f.exam_id)),
        data=_exam_data(f.exam_id, f.exam_code, f.exam_name),
    )


_CHANGES = {
    "added": "You now have a result in {exam}: marks were entered for you after publication.",
    "updated": "Your result in {exam} changed after publication: a mark was corrected, "
    "or your rank moved because of a correction.",
    "removed": "You are no longer a candidate of {exam}: your marks were removed, "
    "so you have no result in it any more.",
}


def _updated(f: ResultsUpdated) -> _Draft:
    exam = f"{f.exam_name} ({f.exam_code})"
    title = (
        f"Your result was withdrawn: {f.exam_name}"
        if f.change == "removed"
        else f"Results updated: {f.exam_name}"
    )
    return _Draft(
        title=title,
        paragraphs=(
            _CHANGES[f.change].format(exam=exam),
            "The exam's results page shows what is current.",
        ),
        link=_Link("See the results", _exam_route(f.exam_id)),
        data={**_exam_data(f.exam_id, f.exam_code, f.exam_name), "change": f.change},
    )


FAILURE_REASONS: dict[str, str] = {
    "FILE_ENCODING": "the file is not UTF-8 or UTF-16 text",
    "FILE_NOT_TEXT": "the file is not a text file",
    "FILE_EMPTY": "the file is empty",
    "FILE_NO_ROWS": "the file has a header but no rows",
    "FILE_HEADER_INVALID": "the header row does not have the expected columns",
    "FILE_TOO_WIDE": "the file has too many columns",
    "FILE_CELL_TOO_LONG": "a cell of the file is too long",
    "FILE_MALFORMED": "the file is not well-formed CSV",
    "FILE_NOT_A_WORKBOOK": "the file is not an Excel workbook",
    "FILE_WORKBOOK_TOO_LARGE": "the workbook is too large",
    "ROWS_INVALID": "some rows have errors, and in all-or-nothing mode none is applied",
    "EXAM_NOT_FOUND": "the exam no longer exists",
    "RESULTS_UNAVAILABLE": "the results service could not be reached",
    "FORBIDDEN": "you are not allowed to make this change",
    "EXAM_PUBLISHED": "the exam is published",
    "NOT_FOUND": "something the file refers to was not found",
}
"""bulk's whole-job failure codes (bulk CHANGELOG), said for a person."""


def failure_reason(code: str | None) -> str:
    """Why a job failed, for a person; an unknown code is named as it is."""
    if code is None:
        return "an unexpected error"
    return FAILURE_REASONS.get(code, f"error {code}")


_STATUS_WORDS: dict[JobStatus, str] = {
    "succeeded": "succeeded",
    "completed_with_errors": "completed with errors",
    "failed": "failed",
    "cancelled": "was cancelled",
}


def _import_finished(f: ImportFinished) -> _Draft:
    what = "marks import" if f.job_kind == "marks_import" else "users import"
    if f.dry_run:
        what = f"dry run of the {what}"
    if f.exam_name is not None:
        what = f"{what} for {f.exam_name}"
    outcome = f"Your {what} {_STATUS_WORDS[f.status]}"
    if f.status == "failed":
        outcome += f": {failure_reason(f.error_code)}"
    verb = "valid" if f.dry_run else "applied"
    read = "The file could not be read" if f.rows_total is None else f"Rows read: {f.rows_total}"
    counts = (
        f"{read}; {verb}: {f.rows_ok}, unchanged: {f.rows_unchanged}, with errors: {f.rows_failed}."
    )
    paragraphs = [outcome + ".", counts]
    if f.dry_run:
        paragraphs.append("This was a dry run: nothing was changed.")
    paragraphs.append(
        "The job's page lists every row with an error."
        if f.rows_failed
        else "The job's page has the details."
    )
    return _Draft(
        title=f"{what[0].upper()}{what[1:]} {_STATUS_WORDS[f.status]}",
        paragraphs=tuple(paragraphs),
        link=_Link("Open the job", _job_route(f.job_id)),
        data={
            "job_id": str(f.job_id),
            "job_kind": f.job_kind,
            "status": f.status,
            "dry_run": f.dry_run,
            "rows_total": f.rows_total,
            "rows_ok": f.rows_ok,
            "rows_unchanged": f.rows_unchanged,
            "rows_failed": f.rows_failed,
            "error_code": f.error_code,
            "exam_name": f.exam_name,
        },
    )


def _export_ready(f: ExportReady) -> _Draft:
    of = f"The results export of {f.exam_name}" if f.exam_name else "Your results export"
    a_file = "an Excel file" if f.file_format == "xlsx" else "a CSV file"
    return _Draft(
        title=f"Export ready: {f.exam_name}" if f.exam_name else "Export ready",
        paragraphs=(
            f"{of} is ready: {a_file} with {f.rows} rows.",
            "Download it from the job's page.",
        ),
        link=_Link("Open the job", _job_route(f.job_id)),
        data={
            "job_id": str(f.job_id),
            "format": f.file_format,
            "rows": f.rows,
            "exam_name": f.exam_name,
        },
    )


def _until(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _invited(f: AccountInvited) -> _Draft:
    return _Draft(
        title="You are invited to the exam results platform",
        paragraphs=(
            "An account was created for you. Choose a password to start using it.",
            f"The invitation works until {_until(f.expires_at)}.",
        ),
        link=_Link("Accept the invitation", "/accept-invitation", token=f.token),
        data={"expires_at": f.expires_at.astimezone(UTC).isoformat()},
    )


def _reset(f: PasswordReset) -> _Draft:
    return _Draft(
        title="Reset your password",
        paragraphs=(
            "Someone asked to reset the password of your account. If it was you, "
            "choose a new password; if not, ignore this message: your password "
            "stays as it is.",
            f"The link works until {_until(f.expires_at)} and only once.",
        ),
        link=_Link("Choose a new password", "/reset-password", token=f.token),
        data={"expires_at": f.expires_at.astimezone(UTC).isoformat()},
    )
