"""What notifications say: escaping, links, and no token outside the email."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from notifier_service.domain.kinds import (
    ALWAYS_EMAILED,
    CARRIES_TOKEN,
    NotificationKind,
    carries_token,
    should_email,
)
from notifier_service.domain.texts import (
    AccountInvited,
    ExportReady,
    Facts,
    ImportFinished,
    PasswordReset,
    ResultsPublished,
    ResultsUpdated,
    email,
    email_message,
    failure_reason,
    frontend_link,
    in_app,
)

K = NotificationKind
EXAM = uuid.UUID("2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c")
JOB = uuid.UUID("6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b")
EXPIRES = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
FRONTEND = "https://app.example.edu"
EVIL = "<script>alert(1)</script> & Co"


def facts_of(
    kind: NotificationKind, *, name: str = "Ann Lee", exam: str = "Physics", token: str = "tok"
) -> Facts:
    match kind:
        case K.RESULTS_PUBLISHED:
            return ResultsPublished(name, EXAM, "PHYS-1", exam)
        case K.RESULTS_UPDATED:
            return ResultsUpdated(name, EXAM, "PHYS-1", exam, "updated")
        case K.IMPORT_FINISHED:
            return ImportFinished(
                name, JOB, "marks_import", "succeeded", False, 3, 3, 0, 0, exam_name=exam
            )
        case K.EXPORT_READY:
            return ExportReady(name, JOB, "csv", 120, exam_name=exam)
        case K.ACCOUNT_INVITED:
            return AccountInvited(name, token, EXPIRES)
        case K.PASSWORD_RESET:
            return PasswordReset(name, token, EXPIRES)
    raise AssertionError(kind)


# -- kinds ---------------------------------------------------------------------------------


def test_kinds_are_the_six_of_the_api() -> None:
    assert {k.value for k in K} == {
        "results_published",
        "results_updated",
        "import_finished",
        "export_ready",
        "account_invited",
        "password_reset",
    }


@pytest.mark.parametrize("kind", list(K))
def test_only_invitations_and_resets_ignore_the_email_preference(kind: NotificationKind) -> None:
    token_kind = kind in (K.ACCOUNT_INVITED, K.PASSWORD_RESET)
    assert should_email(kind, email_preference=True)
    assert should_email(kind, email_preference=False) is token_kind
    assert carries_token(kind) is token_kind
    assert (kind in ALWAYS_EMAILED) is (kind in CARRIES_TOKEN) is token_kind


def test_facts_of_another_kind_are_refused() -> None:
    with pytest.raises(TypeError):
        in_app(K.RESULTS_UPDATED, facts_of(K.RESULTS_PUBLISHED))
    with pytest.raises(TypeError):
        email(K.EXPORT_READY, facts_of(K.IMPORT_FINISHED), FRONTEND)


# -- escaping ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(K))
def test_names_are_text_in_html(kind: NotificationKind) -> None:
    mail = email(kind, facts_of(kind, name=EVIL, exam=EVIL), FRONTEND)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in mail.html
    assert " & Co" not in mail.html  # every & is escaped
    # The plain text and the subject are not HTML: the name is as it is.
    assert f"Hello {EVIL}," in mail.text


@pytest.mark.parametrize(
    "kind", [K.RESULTS_PUBLISHED, K.RESULTS_UPDATED, K.IMPORT_FINISHED, K.EXPORT_READY]
)
def test_exam_names_appear_as_given_in_text_and_escaped_in_html(kind: NotificationKind) -> None:
    facts = facts_of(kind, exam="Maths & <b>Stats</b>")
    note = in_app(kind, facts)
    assert "Maths & <b>Stats</b>" in note.title
    assert "Maths & <b>Stats</b>" in note.body
    mail = email(kind, facts, FRONTEND)
    assert "Maths &amp; &lt;b&gt;Stats&lt;/b&gt;" in mail.html
    assert "<b>" not in mail.html


def test_a_line_break_in_an_exam_name_never_reaches_the_subject() -> None:
    facts = facts_of(K.RESULTS_PUBLISHED, exam="Physics\r\nBcc: all@school.example")
    assert email(K.RESULTS_PUBLISHED, facts, FRONTEND).subject == (
        "Results published: Physics Bcc: all@school.example"
    )
    assert "\n" not in in_app(K.RESULTS_PUBLISHED, facts).title


def test_html_has_only_our_tags() -> None:
    mail = email(K.RESULTS_PUBLISHED, facts_of(K.RESULTS_PUBLISHED, name='"><img src=x>'), FRONTEND)
    assert "<img" not in mail.html
    assert "&quot;&gt;&lt;img src=x&gt;" in mail.html


# -- links and tokens ----------------------------------------------------------------------


def test_results_link_to_the_exams_results_page() -> None:
    for kind in (K.RESULTS_PUBLISHED, K.RESULTS_UPDATED):
        assert in_app(kind, facts_of(kind)).data["link"] == f"/exams/{EXAM}/results"
        message = email_message(kind, facts_of(kind), FRONTEND)
        assert message.link == f"{FRONTEND}/exams/{EXAM}/results"
        assert message.link in message.text
        assert f'href="{message.link}"' in message.html


def test_jobs_link_to_the_job_page() -> None:
    for kind in (K.IMPORT_FINISHED, K.EXPORT_READY):
        assert in_app(kind, facts_of(kind)).data["link"] == f"/jobs/{JOB}"
        assert email_message(kind, facts_of(kind), FRONTEND).link == f"{FRONTEND}/jobs/{JOB}"


@pytest.mark.parametrize(
    ("kind", "route"),
    [(K.ACCOUNT_INVITED, "/accept-invitation"), (K.PASSWORD_RESET, "/reset-password")],
)
def test_token_is_url_encoded_in_the_email_link(kind: NotificationKind, route: str) -> None:
    token = "a+b/c=d&e f?#%"
    message = email_message(kind, facts_of(kind, token=token), FRONTEND + "/portal/")
    assert message.link is not None
    link = urlsplit(message.link)
    assert (link.scheme, link.netloc, link.path) == ("https", "app.example.edu", f"/portal{route}")
    assert link.query == "token=a%2Bb%2Fc%3Dd%26e+f%3F%23%25"
    assert parse_qs(link.query) == {"token": [token]}
    mail = email(kind, facts_of(kind, token=token), FRONTEND)
    assert "token=a%2Bb%2Fc%3Dd%26e+f%3F%23%25" in mail.text
    assert 'token=a%2Bb%2Fc%3Dd%26e+f%3F%23%25"' in mail.html
    assert "2026-12-06 10:00 UTC" in mail.text


TOKENS = st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True) | st.text(min_size=1).map(
    lambda t: "secret:" + t  # any characters, behind a marker no fixed text has
)


@settings(max_examples=300)
@given(kind=st.sampled_from(list(K)), token=TOKENS)
def test_in_app_never_contains_the_token(kind: NotificationKind, token: str) -> None:
    facts = facts_of(kind, token=token)
    note = in_app(kind, facts)
    assert token not in note.title
    assert token not in note.body
    for key, value in note.data.items():
        assert token not in key
        assert token not in str(value)
    assert "token" not in note.body.lower()
    if carries_token(kind):  # the token exists, and only the email has it
        message = email_message(kind, facts, FRONTEND)
        assert message.link is not None
        assert parse_qs(urlsplit(message.link).query) == {"token": [token]}


@settings(max_examples=50)
@given(token=st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True))
def test_url_safe_tokens_reach_the_email_untouched(token: str) -> None:
    mail = email(K.PASSWORD_RESET, facts_of(K.PASSWORD_RESET, token=token), FRONTEND)
    assert f"{FRONTEND}/reset-password?token={token}" in mail.text


def test_token_kinds_in_app_point_to_the_email_without_a_link() -> None:
    for kind in (K.ACCOUNT_INVITED, K.PASSWORD_RESET):
        note = in_app(kind, facts_of(kind))
        assert "link" not in note.data
        assert "email" in note.body


@pytest.mark.parametrize(
    "base",
    ["ftp://x.example", "app.example.edu", "https://x.example/?a=1", "https://x.example/#f", ""],
)
def test_a_frontend_url_that_would_make_wrong_links_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="FRONTEND_URL"):
        frontend_link(base, "/jobs/1")


def test_frontend_url_keeps_its_path_and_port() -> None:
    assert frontend_link("http://localhost:5173", "/jobs/1") == "http://localhost:5173/jobs/1"
    assert frontend_link("https://s.example/portal/", "/x") == "https://s.example/portal/x"


# -- what changed, and import outcomes -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("added", "You now have a result"),
        ("updated", "a mark was corrected"),
        ("removed", "no longer a candidate"),
    ],
)
def test_results_updated_says_what_changed(
    change: Literal["added", "updated", "removed"], words: str
) -> None:
    facts = ResultsUpdated("Ann", EXAM, "PHYS-1", "Physics", change)
    note = in_app(K.RESULTS_UPDATED, facts)
    assert words in note.body
    assert note.data["change"] == change
    assert "Physics (PHYS-1)" in note.body


def _import(status: str, **kw: Any) -> ImportFinished:
    fields: dict[str, Any] = dict(
        recipient_name="Ann",
        job_id=JOB,
        job_kind="marks_import",
        status=status,
        dry_run=False,
        rows_total=120,
        rows_ok=118,
        rows_unchanged=1,
        rows_failed=2,
        exam_name="Physics",
    )
    fields.update(kw)
    return ImportFinished(**fields)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("succeeded", "succeeded"),
        ("completed_with_errors", "completed with errors"),
        ("failed", "failed"),
        ("cancelled", "was cancelled"),
    ],
)
def test_import_texts_give_the_status_and_the_counts(status: str, words: str) -> None:
    note = in_app(K.IMPORT_FINISHED, _import(status))
    assert note.title == f"Marks import for Physics {words}"
    assert "Rows read: 120; applied: 118, unchanged: 1, with errors: 2." in note.body
    assert note.data["status"] == status
    assert note.data["rows_failed"] == 2


def test_a_failed_import_says_why() -> None:
    note = in_app(
        K.IMPORT_FINISHED,
        _import(
            "failed",
            error_code="FILE_ENCODING",
            rows_total=None,
            rows_ok=0,
            rows_unchanged=0,
            rows_failed=0,
        ),
    )
    assert "failed: the file is not UTF-8 or UTF-16 text." in note.body
    assert "The file could not be read" in note.body
    assert failure_reason("SOMETHING_NEW") == "error SOMETHING_NEW"
    assert failure_reason(None) == "an unexpected error"


def test_a_dry_run_says_nothing_was_changed() -> None:
    note = in_app(
        K.IMPORT_FINISHED,
        _import("succeeded", dry_run=True, job_kind="users_import", exam_name=None),
    )
    assert note.title == "Dry run of the users import succeeded"
    assert "valid: 118" in note.body
    assert "nothing was changed" in note.body


def test_export_ready_names_the_file() -> None:
    note = in_app(K.EXPORT_READY, ExportReady("Ann", JOB, "xlsx", 120, exam_name="Physics"))
    assert note.title == "Export ready: Physics"
    assert "an Excel file with 120 rows" in note.body
    assert in_app(K.EXPORT_READY, ExportReady("Ann", JOB, "csv", 1)).title == "Export ready"
