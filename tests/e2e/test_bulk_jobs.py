"""Bulk jobs through the gateway, as a new user would (API.md "Bulk jobs", issue 9).

An examiner uploads marks as CSV (long) and XLSX (wide), watches the job, gets
exact counts, an errors file and fresh results; an admin imports users;
exports open safely in a spreadsheet; every refusal has its envelope.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import openpyxl
import pytest
from bulk_support import (
    CSV,
    XLSX,
    admin_client,
    create_exam,
    create_user,
    errors_of,
    login,
    marks_of,
    ok,
    upload,
    wait_for_job,
    wait_fresh,
)
from conftest import E2E, bearer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(e2e: E2E, admin_tokens: dict[str, str]) -> dict[str, Any]:
    """An exam with two subjects, three students and an examiner."""
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, [("MATH", 100), ("PHYS", 50)])
        students = [create_user(admin, "student") for _ in range(3)]
        examiner = create_user(admin, "examiner")
    return {
        "exam": exam,
        "numbers": [s["student_number"] for s in students],
        "students": students,
        "examiner": examiner,
        "examiner_token": login(e2e, examiner["email"]),
    }


def examiner(e2e: E2E, world: dict[str, Any]) -> httpx.Client:
    return e2e.client(headers=bearer(world["examiner_token"]))


def test_a_long_csv_as_a_spreadsheet_writes_it_imports_with_exact_counts_and_errors(
    e2e: E2E, world: dict[str, Any]
) -> None:
    exam_id = world["exam"]["id"]
    s1, s2, s3 = world["numbers"]
    # What a European Excel writes: BOM, semicolons, decimal commas, CRLF,
    # quoted cells, header names in any case with spaces, trailing blank lines.
    text = (
        " Student_Number ;SUBJECT_CODE; Mark \r\n"
        f"{s1};MATH;79,5\r\n"
        f'"{s1}";phys;"ab"\r\n'
        f"{s2};MATH;ex\r\n"
        f"{s2};PHYS;51\r\n"  # above PHYS's max mark (50)
        "S-NOBODY;MATH;40\r\n"  # results: STUDENT_NOT_FOUND
        f"{s3};MATH;10\r\n"
        f"{s3};MATH;11\r\n"  # duplicate of the row above: both rows fail
        f"{s3};PHYS;12.345\r\n"  # three decimals
        "\r\n\r\n"
    )
    with examiner(e2e, world) as client:
        response = upload(
            client, f"/api/v1/exams/{exam_id}/imports", "\ufeff".encode() + text.encode()
        )
        job = ok(response, 202)
        assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "running")
        assert job["kind"] == "marks_import" and job["format"] == "csv"
        done = wait_for_job(client, job["id"])
        assert done["status"] == "completed_with_errors", done
        assert done["rows_total"] == 8
        assert (done["rows_ok"], done["rows_unchanged"], done["rows_failed"]) == (3, 0, 5)
        assert done["progress"] == 1
        assert done["error"] is None
        errors = errors_of(client, job["id"])
        by_row = {(int(r[0]), r[2]) for r in errors}
        assert (5, "MARK_OUT_OF_RANGE") in by_row
        assert (6, "STUDENT_NOT_FOUND") in by_row
        assert (7, "DUPLICATE_ENTRY") in by_row and (8, "DUPLICATE_ENTRY") in by_row
        assert (9, "TOO_MANY_DECIMALS") in by_row
        assert [int(r[0]) for r in errors] == sorted(int(r[0]) for r in errors)
        marks = marks_of(client, exam_id)
        assert marks[(s1, "MATH")] == ("present", 79.5)
        assert marks[(s1, "PHYS")] == ("absent", None)
        assert marks[(s2, "MATH")] == ("exempt", None)
        assert (s3, "MATH") not in marks
        # Nobody asked for a generation: the import's marks change regenerates.
        wait_fresh(client, exam_id)
        result = ok(client.get(f"/api/v1/exams/{exam_id}/results/{s1}"))
        assert result["subjects"][0]["mark"] == 79.5


def test_a_wide_xlsx_sent_as_a_browser_form_imports(
    e2e: E2E, admin_tokens: dict[str, str], world: dict[str, Any]
) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, [("MATH", 100), ("PHYS", 50)])
    s1, s2, s3 = world["numbers"]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["student_number", "math", "PHYS ", None])
    sheet.append([s1, 88, 40.5])
    sheet.append([s2, "AB", None])  # an empty cell is no entry
    sheet.append([s3, "72,25", "EX"])
    sheet.append([None, None, None])  # an empty row in the middle
    buffer = io.BytesIO()
    book.save(buffer)
    with admin_client(e2e, admin_tokens) as client:
        response = client.post(
            f"/api/v1/exams/{exam['id']}/imports",
            files={"file": ("marks.xlsx", buffer.getvalue(), XLSX)},
        )
        job = ok(response, 202)
        assert job["format"] == "xlsx" and job["file_name"] == "marks.xlsx"
        done = wait_for_job(client, job["id"])
        assert done["status"] == "succeeded", (done, errors_of(client, job["id"]))
        assert (done["rows_total"], done["rows_ok"], done["rows_failed"]) == (5, 5, 0)
        marks = marks_of(client, exam["id"])
        assert marks[(s1, "PHYS")] == ("present", 40.5)
        assert marks[(s3, "MATH")] == ("present", 72.25)
        assert marks[(s2, "MATH")] == ("absent", None)
        assert (s2, "PHYS") not in marks
        # The same file again changes nothing.
        again = ok(
            client.post(
                f"/api/v1/exams/{exam['id']}/imports",
                files={"file": ("marks.xlsx", buffer.getvalue(), "application/octet-stream")},
            ),
            202,
        )
        done = wait_for_job(client, again["id"])
        assert (done["status"], done["rows_ok"], done["rows_unchanged"]) == ("succeeded", 0, 5)


def test_templates_give_the_header_of_the_exam(e2e: E2E, world: dict[str, Any]) -> None:
    exam_id = world["exam"]["id"]
    with examiner(e2e, world) as client:
        long = client.get(f"/api/v1/exams/{exam_id}/imports/template")
        wide = client.get(
            f"/api/v1/exams/{exam_id}/imports/template", params={"shape": "wide", "format": "xlsx"}
        )
        missing = client.get(f"/api/v1/exams/{uuid.uuid4()}/imports/template")
    assert long.status_code == 200 and long.headers["content-type"].startswith("text/csv")
    assert "attachment" in long.headers["content-disposition"]
    assert next(csv.reader(io.StringIO(long.content.decode("utf-8-sig")))) == [
        "student_number",
        "subject_code",
        "mark",
    ]
    assert wide.status_code == 200 and wide.headers["content-type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(wide.content)).active
    assert [c.value for c in next(sheet.iter_rows(max_row=1))] == ["student_number", "MATH", "PHYS"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_all_or_nothing_with_one_bad_row_applies_nothing_and_a_dry_run_writes_nothing(
    e2e: E2E, admin_tokens: dict[str, str], world: dict[str, Any]
) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, [("MATH", 100)])
    s1, s2, _ = world["numbers"]
    good = f"student_number,subject_code,mark\n{s1},MATH,50\n{s2},MATH,60\n".encode()
    bad = good + b"S-NOBODY,MATH,70\n"
    path = f"/api/v1/exams/{exam['id']}/imports"
    with admin_client(e2e, admin_tokens) as client:
        failed = wait_for_job(
            client, ok(upload(client, path, bad, params={"mode": "all_or_nothing"}), 202)["id"]
        )
        assert failed["status"] == "failed" and failed["error"]["code"] == "ROWS_INVALID"
        assert (failed["rows_ok"], failed["rows_failed"]) == (0, 1)
        assert [r[2] for r in errors_of(client, failed["id"])] == ["STUDENT_NOT_FOUND"]
        dry = wait_for_job(
            client, ok(upload(client, path, good, params={"dry_run": "true"}), 202)["id"]
        )
        assert (dry["status"], dry["dry_run"], dry["rows_ok"]) == ("succeeded", True, 2)
        assert marks_of(client, exam["id"]) == {}
        applied = wait_for_job(
            client, ok(upload(client, path, good, params={"mode": "all_or_nothing"}), 202)["id"]
        )
        assert (applied["status"], applied["rows_ok"]) == ("succeeded", 2)
        assert len(marks_of(client, exam["id"])) == 2


def test_the_same_idempotency_key_returns_the_same_job(e2e: E2E, world: dict[str, Any]) -> None:
    exam_id = world["exam"]["id"]
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = f"student_number,subject_code,mark\n{world['numbers'][0]},MATH,79.5\n".encode()
    with examiner(e2e, world) as client:
        first = ok(upload(client, f"/api/v1/exams/{exam_id}/imports", body, headers=key), 202)
        second = ok(upload(client, f"/api/v1/exams/{exam_id}/imports", body, headers=key), 202)
        assert first["id"] == second["id"]
        listed = ok(client.get("/api/v1/jobs", params={"kind": "marks_import", "limit": "500"}))
        assert sum(1 for j in listed["items"] if j["id"] == first["id"]) == 1
        wait_for_job(client, first["id"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"student_number,subject_code,mark\n", "FILE_NO_ROWS"),
        (b"student_number,subject_code,mark\nS-1,MATH,\x00\x01\x02\n", "FILE_NOT_TEXT"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "FILE_ENCODING"),
        (
            "student_number,subject_code,mark\nS-1,MATH,5\nS-\xe9,MATH,4\n".encode("latin-1"),
            "FILE_ENCODING",
        ),
        (b"student,subject_code,mark\nS-1,MATH,5\n", "FILE_HEADER_INVALID"),
    ],
    ids=["header-only", "nul-bytes", "png-named-csv", "latin-1", "bad-header"],
)
def test_a_file_that_cannot_be_read_fails_clearly(
    e2e: E2E, world: dict[str, Any], body: bytes, code: str
) -> None:
    with examiner(e2e, world) as client:
        job = ok(upload(client, f"/api/v1/exams/{world['exam']['id']}/imports", body), 202)
        done = wait_for_job(client, job["id"])
    assert done["status"] == "failed" and done["error"]["code"] == code, done
    assert done["error"]["message"]
    if body.startswith(b"student_number") and code == "FILE_ENCODING":
        assert "row 3" in done["error"]["message"].lower()  # the row of the first bad byte


def test_refusals_come_in_the_envelope(
    e2e: E2E, admin_tokens: dict[str, str], world: dict[str, Any]
) -> None:
    exam_id = world["exam"]["id"]
    body = b"student_number,subject_code,mark\n"
    with examiner(e2e, world) as client:
        wrong_type = upload(
            client, f"/api/v1/exams/{exam_id}/imports", body, content_type="text/plain"
        )
        no_exam = upload(client, f"/api/v1/exams/{uuid.uuid4()}/imports", body)
        empty = upload(client, f"/api/v1/exams/{exam_id}/imports", b"")
        users = upload(client, "/api/v1/users/imports", b"email,full_name,role,student_number\n")
        form_without_file = client.post(
            f"/api/v1/exams/{exam_id}/imports", files={"other": ("a.csv", body, CSV)}
        )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert no_exam.status_code == 404 and no_exam.json()["error"]["code"] == "NOT_FOUND"
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "VALIDATION_FAILED"
    assert users.status_code == 403 and users.json()["error"]["code"] == "FORBIDDEN"
    assert form_without_file.status_code == 400
    student_token = login(e2e, world["students"][0]["email"])
    with e2e.client(headers=bearer(student_token)) as student:
        refused = upload(student, f"/api/v1/exams/{exam_id}/imports", body)
    assert refused.status_code == 403


def test_a_job_is_seen_by_its_creator_and_admins_only(
    e2e: E2E, admin_tokens: dict[str, str], world: dict[str, Any]
) -> None:
    body = f"student_number,subject_code,mark\n{world['numbers'][0]},MATH,1\n".encode()
    with examiner(e2e, world) as client:
        job = ok(upload(client, f"/api/v1/exams/{world['exam']['id']}/imports", body), 202)
        wait_for_job(client, job["id"])
    with admin_client(e2e, admin_tokens) as admin:
        other = create_user(admin, "examiner")
        assert ok(admin.get(f"/api/v1/jobs/{job['id']}"))["id"] == job["id"]
        listed = ok(admin.get("/api/v1/jobs", params={"limit": "500"}))
        assert any(j["id"] == job["id"] for j in listed["items"])
    with e2e.client(headers=bearer(login(e2e, other["email"]))) as stranger:
        for path in ("", "/errors", "/download"):
            response = stranger.get(f"/api/v1/jobs/{job['id']}{path}")
            assert response.status_code == 404, (path, response.text)
        assert stranger.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 404
        assert ok(stranger.get("/api/v1/jobs"))["items"] == []


def test_a_finished_job_cannot_be_cancelled_and_has_no_download(
    e2e: E2E, world: dict[str, Any]
) -> None:
    body = f"student_number,subject_code,mark\n{world['numbers'][1]},MATH,2\n".encode()
    with examiner(e2e, world) as client:
        job = ok(upload(client, f"/api/v1/exams/{world['exam']['id']}/imports", body), 202)
        wait_for_job(client, job["id"])
        cancel = client.post(f"/api/v1/jobs/{job['id']}/cancel")
        download = client.get(f"/api/v1/jobs/{job['id']}/download")
    assert cancel.status_code == 409 and cancel.json()["error"]["code"] == "CONFLICT"
    assert download.status_code == 409


def test_an_admin_imports_users_idempotently_invited_or_with_a_password(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    rows = [
        f"invited-{tag}@example.edu,Ann Invited,student,S-I-{tag},",
        f"ready-{tag}@example.edu,Bob Ready,examiner,,a-good-password-1",
        f"Ready-{tag}@EXAMPLE.edu,Bob Twice,examiner,,",  # the same email twice: both fail
        f"bad-{tag},No Email,student,S-B-{tag},",
        f"carl-{tag}@example.edu,Carl,teacher,,",
    ]
    body = ("email,full_name,role,student_number,password\n" + "\n".join(rows) + "\n").encode()
    with admin_client(e2e, admin_tokens) as client:
        job = ok(upload(client, "/api/v1/users/imports", body), 202)
        done = wait_for_job(client, job["id"])
        assert done["status"] == "completed_with_errors", done
        assert (done["rows_total"], done["rows_ok"], done["rows_failed"]) == (5, 1, 4)
        codes = {(int(r[0]), r[2]) for r in errors_of(client, job["id"])}
        assert {(3, "DUPLICATE_ENTRY"), (4, "DUPLICATE_ENTRY"), (5, "EMAIL_INVALID")} <= codes
        assert (6, "INVALID_ROLE") in codes
        assert not any("a-good-password-1" in ",".join(r) for r in errors_of(client, job["id"]))
        fixed = body.replace(f"Ready-{tag}@EXAMPLE.edu,Bob Twice,examiner,,\n".encode(), b"")
        done = wait_for_job(client, ok(upload(client, "/api/v1/users/imports", fixed), 202)["id"])
        assert (done["rows_ok"], done["rows_unchanged"]) == (1, 1), done
        again = wait_for_job(client, ok(upload(client, "/api/v1/users/imports", fixed), 202)["id"])
        assert (again["rows_ok"], again["rows_unchanged"]) == (0, 2), again
        users = ok(client.get("/api/v1/users", params={"q": tag, "limit": "500"}))["items"]
        by_email = {u["email"].lower(): u for u in users}
        assert by_email[f"invited-{tag}@example.edu"]["active"] is False
        assert by_email[f"ready-{tag}@example.edu"]["active"] is True
    login(e2e, f"ready-{tag}@example.edu", "a-good-password-1")


def test_an_export_opens_safely_in_a_spreadsheet(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, [("MATH", 100), ("PHYS", 50)])
        evil = create_user(admin, "student")
        plain = create_user(admin, "student")
        ok(
            admin.patch(
                f"/api/v1/users/{evil['id']}", json={"full_name": '=HYPERLINK("http://x","y")'}
            )
        )
        rows = (
            f"student_number,MATH,PHYS\n{evil['student_number']},79.5,AB\n"
            f"{plain['student_number']},40,25\n"
        )
        wait_for_job(
            admin,
            ok(upload(admin, f"/api/v1/exams/{exam['id']}/imports", rows.encode()), 202)["id"],
        )
        wait_fresh(admin, exam["id"])
        for file_format in ("csv", "xlsx"):
            job = ok(
                admin.post(f"/api/v1/exams/{exam['id']}/exports", params={"format": file_format}),
                202,
            )
            assert job["kind"] == "results_export"
            done = wait_for_job(admin, job["id"])
            assert done["status"] == "succeeded", done
            assert done["rows_total"] == 2
            response = admin.get(f"/api/v1/jobs/{job['id']}/download")
            assert response.status_code == 200
            assert "attachment; filename=" in response.headers["content-disposition"]
            if file_format == "csv":
                lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
                assert lines[0][:10] == [
                    "student_number",
                    "student_name",
                    "status",
                    "total",
                    "max_total",
                    "percentage",
                    "grade",
                    "gpa",
                    "passed",
                    "rank",
                ]
                assert lines[0][10:] == ["MATH", "PHYS"]
                by_number = {line[0]: line for line in lines[1:]}
                assert by_number[evil["student_number"]][1].startswith("'=")
                assert by_number[evil["student_number"]][10:] == ["79.50", "AB"]
                assert by_number[plain["student_number"]][3] == "65.00"
            else:
                assert response.headers["content-type"] == XLSX
                sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
                values = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
                evil_row = values[evil["student_number"]]
                assert isinstance(evil_row[1], str) and evil_row[1].endswith('"y")')
                assert sheet.cell(row=2, column=2).data_type != "f"
                assert isinstance(values[plain["student_number"]][3], (int, float))
