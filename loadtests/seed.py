"""Seeds a results day through the gateway and writes the credentials the load test reads.

    uv run python -m loadtests.seed [--gateway http://127.0.0.1:8000] [--students 5000]
        [--examiners 50] [--exams 20] [--out loadtests/.seed/credentials.json]

Everything goes through the public API, as a person or a script would:

- students and examiners come from one users import (``POST /users/imports``,
  CSV, as the admin), polled until the job is done; rows are idempotent on
  email, so a second run changes nothing;
- ``--exams`` published exams of 6-8 subjects, each sat by a cohort of the
  students (every student sits ``--exams-per-student`` of them), their marks
  uploaded as one long CSV per exam by an examiner of the exam
  (``POST /exams/{id}/imports``), then results generated and published;
- ``--workbench-exams`` draft exams open to every examiner, with marks for the
  first ``--workbench-students`` students: the load test's examiners write
  marks, generate and import there (a published exam refuses them).

Exams are found again by code (``<PREFIX>-EXAM-000``...), so a second run
reuses what exists and only finishes what a first run left undone. When the
credentials file already describes this gateway, this prefix and this scale,
and its exams are still there and published, nothing is done at all (``--force``
re-runs every step). The first admin is the one auth creates at start
(``ADMIN_EMAIL``/``ADMIN_PASSWORD``, the dev defaults unless set).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

API = "/api/v1"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / ".seed" / "credentials.json"
EMAIL_DOMAIN = "loadtest.example.edu"
JOB_SECONDS = 900
"""Longest wait for one import job."""
FINISHED = {"succeeded", "completed_with_errors", "failed", "cancelled"}
GRADING_SCALE = [
    {"grade": "A", "min_percent": 80, "points": 4},
    {"grade": "B", "min_percent": 65, "points": 3},
    {"grade": "C", "min_percent": 50, "points": 2},
    {"grade": "D", "min_percent": 40, "points": 1},
    {"grade": "F", "min_percent": 0, "points": 0},
]
SUBJECT_NAMES = [
    ("MATH", "Mathematics"),
    ("PHYS", "Physics"),
    ("CHEM", "Chemistry"),
    ("BIOL", "Biology"),
    ("HIST", "History"),
    ("GEOG", "Geography"),
    ("LITR", "Literature"),
    ("COMP", "Computing"),
]


class SeedError(RuntimeError):
    """The gateway answered something the seeding cannot go on from."""


@dataclass(frozen=True)
class Scale:
    students: int = 5000
    examiners: int = 50
    exams: int = 20
    exams_per_student: int = 2
    workbench_exams: int = 4
    workbench_students: int = 200
    prefix: str = "LT"
    password: str = "loadtest-password-1"

    def __post_init__(self) -> None:
        if self.students < 1 or self.examiners < 1 or self.exams < 1:
            raise ValueError("at least one student, one examiner and one exam")
        if len(self.password) < 10:
            raise ValueError("passwords need at least 10 characters")

    def record(self) -> dict[str, Any]:
        """What the credentials file says of the scale (each account carries its password)."""
        return {k: v for k, v in asdict(self).items() if k != "password"}

    @property
    def tag(self) -> str:
        return self.prefix.lower()

    def student_email(self, i: int) -> str:
        return f"{self.tag}-student-{i:05d}@{EMAIL_DOMAIN}"

    def student_number(self, i: int) -> str:
        return f"{self.prefix}{i:06d}"

    def examiner_email(self, i: int) -> str:
        return f"{self.tag}-examiner-{i:03d}@{EMAIL_DOMAIN}"

    def exam_code(self, i: int) -> str:
        return f"{self.prefix}-EXAM-{i:03d}"

    def workbench_code(self, i: int) -> str:
        return f"{self.prefix}-WORK-{i:02d}"

    def sits(self, exam: int) -> list[int]:
        """The students (indexes) of published exam ``exam``: student j sits exams
        j, j+1, ..., j+exams_per_student-1 (mod the number of exams)."""
        per = min(self.exams_per_student, self.exams)
        return [j for j in range(self.students) if (exam - j) % self.exams < per]

    def subjects(self, exam: int) -> list[tuple[str, str, int]]:
        """6 to 8 subjects (code, name, max mark); fewer only if there are fewer names."""
        count = min(len(SUBJECT_NAMES), 6 + exam % 3)
        return [
            (code, name, 100 if k % 2 == 0 else 50)
            for k, (code, name) in enumerate(SUBJECT_NAMES[:count])
        ]


def users_csv(scale: Scale) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "full_name", "role", "student_number", "password"])
    for i in range(scale.examiners):
        writer.writerow(
            [scale.examiner_email(i), f"Examiner {i:03d}", "examiner", "", scale.password]
        )
    for i in range(scale.students):
        writer.writerow(
            [
                scale.student_email(i),
                f"Student {i:05d}",
                "student",
                scale.student_number(i),
                scale.password,
            ]
        )
    return out.getvalue().encode()


def marks_csv(
    seed: str, subjects: Sequence[tuple[str, str, int]], student_numbers: Iterable[str]
) -> bytes:
    """The long shape (``student_number,subject_code,mark``); the same file on every run."""
    rng = random.Random(seed)
    out = io.StringIO()
    out.write("student_number,subject_code,mark\n")
    for number in student_numbers:
        for code, _name, max_mark in subjects:
            roll = rng.random()
            if roll < 0.02:
                mark = "AB"
            elif roll < 0.03:
                mark = "EX"
            else:
                share = min(1.0, max(0.0, rng.gauss(0.62, 0.17)))
                mark = f"{share * max_mark:.2f}"
            out.write(f"{number},{code},{mark}\n")
    return out.getvalue().encode()


def exam_body(
    code: str, name: str, subjects: Sequence[tuple[str, str, int]], examiner_ids: list[str]
) -> dict[str, Any]:
    return {
        "code": code,
        "name": name,
        "term": "Load test",
        "subjects": [
            {
                "code": s_code,
                "name": s_name,
                "max_mark": max_mark,
                "pass_mark": max_mark * 2 // 5,
                "credits": 1,
                "examiner_ids": examiner_ids,
            }
            for s_code, s_name, max_mark in subjects
        ],
        "grading_scale": GRADING_SCALE,
        "pass_percent": 40,
    }


def retry_after(response: httpx.Response) -> float:
    try:
        return max(0.2, min(10.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


class Session:
    """One signed-in person: calls with their bearer token, signs in again when it expires,
    and waits out 429 and 503 (``Retry-After``) instead of failing the seed."""

    def __init__(self, http: httpx.AsyncClient, email: str, password: str) -> None:
        self.http = http
        self.email = email
        self.password = password
        self.token = ""
        self._login_lock = asyncio.Lock()

    async def login(self) -> None:
        async with self._login_lock:
            response = await self._send(
                "POST",
                f"{API}/auth/login",
                json={"email": self.email, "password": self.password},
            )
            if response.status_code != 200:
                raise SeedError(f"cannot sign in as {self.email}: {response.text[:300]}")
            self.token = response.json()["access_token"]

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise SeedError(f"{method} {path}: {exc!r}") from exc
                await asyncio.sleep(1)
                continue
            if response.status_code in (429, 503) and time.monotonic() < deadline:
                await asyncio.sleep(retry_after(response))
                continue
            return response

    async def call(
        self, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any
    ) -> httpx.Response:
        if not self.token:
            await self.login()
        extra = kwargs.pop("headers", {})
        for attempt in range(2):
            headers = {**extra, "Authorization": f"Bearer {self.token}"}
            response = await self._send(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 0:
                await self.login()
                continue
            if response.status_code not in expect:
                raise SeedError(
                    f"{method} {path} as {self.email}: {response.status_code} {response.text[:500]}"
                )
            return response
        raise AssertionError("unreachable")

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.call(method, path, **kwargs)).json()

    async def all_pages(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        while True:
            query = {**(params or {}), "limit": "500", **({"cursor": cursor} if cursor else {})}
            page = await self.json("GET", path, params=query)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items

    async def run_job(self, path: str, body: bytes) -> dict[str, Any]:
        """Uploads a CSV and polls its job until it has finished."""
        job = await self.json(
            "POST", path, content=body, headers={"Content-Type": "text/csv"}, expect=(202,)
        )
        return await self.wait_job(job["id"])

    async def wait_job(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + JOB_SECONDS
        pause = 0.1
        while True:
            job: dict[str, Any] = await self.json("GET", f"{API}/jobs/{job_id}")
            if job["status"] in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise SeedError(f"job {job_id} still {job['status']} after {JOB_SECONDS}s")
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)

    async def job_errors(self, job_id: str) -> list[dict[str, str]]:
        text = (await self.call("GET", f"{API}/jobs/{job_id}/errors")).text
        return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def log(message: str) -> None:
    print(f"seed: {message}", flush=True)


class Seeder:
    def __init__(self, http: httpx.AsyncClient, admin: Session, scale: Scale) -> None:
        self.http = http
        self.admin = admin
        self.scale = scale
        self.examiner_sessions: dict[str, Session] = {}
        self.parallel = asyncio.Semaphore(4)

    def examiner(self, email: str) -> Session:
        if email not in self.examiner_sessions:
            self.examiner_sessions[email] = Session(self.http, email, self.scale.password)
        return self.examiner_sessions[email]

    async def users(self) -> dict[str, str]:
        """Imports every student and examiner; returns the examiners' ids by email."""
        started = time.monotonic()
        job = await self.admin.run_job(f"{API}/users/imports", users_csv(self.scale))
        if job["status"] != "succeeded" or job["rows_failed"]:
            errors = await self.admin.job_errors(job["id"])
            raise SeedError(f"users import {job['status']}: {errors[:5]}")
        log(
            f"users import: {job['rows_ok']} written, {job['rows_unchanged']} unchanged "
            f"in {time.monotonic() - started:.1f}s"
        )
        tag = f"{self.scale.tag}-examiner-"
        found = await self.admin.all_pages(f"{API}/users", {"role": "examiner", "q": tag})
        ids = {u["email"]: u["id"] for u in found if u["email"].startswith(tag)}
        missing = [
            e for e in map(self.scale.examiner_email, range(self.scale.examiners)) if e not in ids
        ]
        if missing:
            raise SeedError(f"examiners not found after the import: {missing[:5]}")
        return ids

    async def import_marks(
        self, uploader: Session, exam: dict[str, Any], body: bytes
    ) -> dict[str, Any]:
        """Uploads the exam's marks; rows of students results does not know yet (it learns
        them from auth's events, a moment after the users import) are uploaded again."""
        deadline = time.monotonic() + 180
        while True:
            job = await uploader.run_job(f"{API}/exams/{exam['id']}/imports", body)
            if job["status"] == "succeeded" and not job["rows_failed"]:
                return job
            errors = await uploader.job_errors(job["id"]) if job["rows_failed"] else []
            waiting = errors and all(e.get("code") == "STUDENT_NOT_FOUND" for e in errors)
            if not waiting or time.monotonic() > deadline:
                raise SeedError(
                    f"marks import of {exam['code']}: {job['status']} {job.get('error')} "
                    f"{errors[:5]}"
                )
            await asyncio.sleep(1)

    async def publish(self, exam: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + 300
        while True:
            await self.admin.call("POST", f"{API}/exams/{exam['id']}/results/generate")
            response = await self.admin.call(
                "POST", f"{API}/exams/{exam['id']}/publish", json={}, expect=(200, 409)
            )
            if response.status_code == 200:
                return dict(response.json())
            code = error_code(response)
            if code == "EXAM_PUBLISHED":
                return dict(await self.admin.json("GET", f"{API}/exams/{exam['id']}"))
            if code != "RESULTS_STALE" or time.monotonic() > deadline:
                raise SeedError(f"publishing {exam['code']}: {response.text[:300]}")
            await asyncio.sleep(0.5)

    async def exam(
        self,
        existing: dict[str, dict[str, Any]],
        code: str,
        name: str,
        subjects: list[tuple[str, str, int]],
        examiner_emails: list[str],
        examiner_ids: dict[str, str],
        students: list[int],
        *,
        publish: bool,
    ) -> dict[str, Any]:
        async with self.parallel:
            started = time.monotonic()
            exam = existing.get(code.lower())
            if exam is None:
                body = exam_body(code, name, subjects, [examiner_ids[e] for e in examiner_emails])
                response = await self.admin.call(
                    "POST", f"{API}/exams", json=body, expect=(201, 409)
                )
                if response.status_code == 409:  # created by a concurrent run meanwhile
                    found = await self.admin.all_pages(f"{API}/exams")
                    exam = next(e for e in found if e["code"].lower() == code.lower())
                else:
                    exam = response.json()
            assert exam is not None
            numbers = [self.scale.student_number(j) for j in students]
            if exam["status"] == "draft":
                uploader = self.examiner(examiner_emails[0]) if examiner_emails else self.admin
                job = await self.import_marks(uploader, exam, marks_csv(code, subjects, numbers))
                action = f"{job['rows_ok']} marks written, {job['rows_unchanged']} unchanged"
                if publish:
                    exam = await self.publish(exam)
                    action += ", published"
                else:
                    await self.admin.call("POST", f"{API}/exams/{exam['id']}/results/generate")
                    action += ", generated"
            else:
                action = f"already {exam['status']}"
            log(f"{code}: {len(numbers)} students, {action} ({time.monotonic() - started:.1f}s)")
            return {
                "id": exam["id"],
                "code": exam["code"],
                "status": exam["status"],
                "subjects": [s[0] for s in subjects],
                "candidates": len(numbers),
                **({} if publish else {"student_numbers": numbers}),
            }

    async def run(self) -> dict[str, Any]:
        scale = self.scale
        examiner_ids = await self.users()
        existing = {e["code"].lower(): e for e in await self.admin.all_pages(f"{API}/exams")}
        examiners = [scale.examiner_email(i) for i in range(scale.examiners)]
        published = [
            self.exam(
                existing,
                scale.exam_code(i),
                f"Load test exam {i:03d}",
                scale.subjects(i),
                [e for k, e in enumerate(examiners) if k % scale.exams == i],
                examiner_ids,
                scale.sits(i),
                publish=True,
            )
            for i in range(scale.exams)
        ]
        workbench = [
            self.exam(
                existing,
                scale.workbench_code(i),
                f"Load test workbench {i:02d}",
                scale.subjects(i),
                [],
                examiner_ids,
                list(range(min(scale.workbench_students, scale.students))),
                publish=False,
            )
            for i in range(scale.workbench_exams)
        ]
        exams = await asyncio.gather(*published, *workbench)
        per = min(scale.exams_per_student, scale.exams)
        return {
            "scale": scale.record(),
            "admin": {"email": self.admin.email, "password": self.admin.password},
            "examiners": [
                {"email": e, "password": scale.password, "id": examiner_ids[e]} for e in examiners
            ],
            "students": [
                {
                    "email": scale.student_email(j),
                    "password": scale.password,
                    "student_number": scale.student_number(j),
                    "published_exams": per,
                }
                for j in range(scale.students)
            ],
            "exams": list(exams[: scale.exams]),
            "workbench": list(exams[scale.exams :]),
        }


async def up_to_date(admin: Session, previous: dict[str, Any]) -> bool:
    """Whether every exam the previous run wrote down is still there as it left it."""
    found = {e["id"]: e for e in await admin.all_pages(f"{API}/exams")}
    for exam in previous["exams"] + previous["workbench"]:
        now = found.get(exam["id"])
        if now is None or now["code"] != exam["code"] or now["status"] != exam["status"]:
            return False
    return True


async def seed(
    gateway: str,
    admin_email: str,
    admin_password: str,
    scale: Scale,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    """Seeds (or finds ``previous`` still true) and returns the credentials to write."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=gateway, timeout=120, limits=limits) as http:
        try:
            await http.get("/readyz", timeout=5)
        except httpx.TransportError as exc:
            raise SeedError(
                f"no gateway answers at {gateway} ({exc!r}); start it: make run"
            ) from exc
        admin = Session(http, admin_email, admin_password)
        await admin.login()
        if (
            previous is not None
            and previous.get("gateway") == gateway
            and previous.get("scale") == scale.record()
            and previous.get("admin", {}).get("email") == admin_email
            and await up_to_date(admin, previous)
        ):
            log(f"the credentials file is up to date with {gateway}; nothing to do")
            return previous
        return {"gateway": gateway, **await Seeder(http, admin, scale).run()}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    defaults = Scale()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gateway", default=os.environ.get("LOADTEST_GATEWAY", "http://127.0.0.1:8000")
    )
    parser.add_argument("--admin-email", default=os.environ.get("ADMIN_EMAIL", "admin@example.edu"))
    parser.add_argument(
        "--admin-password", default=os.environ.get("ADMIN_PASSWORD", "admin-dev-password")
    )
    parser.add_argument("--students", type=int, default=defaults.students)
    parser.add_argument("--examiners", type=int, default=defaults.examiners)
    parser.add_argument("--exams", type=int, default=defaults.exams)
    parser.add_argument("--exams-per-student", type=int, default=defaults.exams_per_student)
    parser.add_argument("--workbench-exams", type=int, default=defaults.workbench_exams)
    parser.add_argument("--workbench-students", type=int, default=defaults.workbench_students)
    parser.add_argument(
        "--prefix",
        default=defaults.prefix,
        help="starts every email, student number and exam code of this data set",
    )
    parser.add_argument("--password", default=defaults.password, help="of every seeded account")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="re-run every step")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    scale = Scale(
        students=args.students,
        examiners=args.examiners,
        exams=args.exams,
        exams_per_student=args.exams_per_student,
        workbench_exams=args.workbench_exams,
        workbench_students=args.workbench_students,
        prefix=args.prefix,
        password=args.password,
    )
    out: Path = args.out
    previous = None if args.force or not out.is_file() else json.loads(out.read_text())
    started = time.monotonic()
    try:
        credentials = asyncio.run(
            seed(args.gateway.rstrip("/"), args.admin_email, args.admin_password, scale, previous)
        )
    except (SeedError, httpx.HTTPError) as exc:
        print(f"seed failed: {exc}", file=sys.stderr)
        return 1
    if credentials is not previous:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(credentials, indent=1))
        tmp.replace(out)
    log(f"done in {time.monotonic() - started:.1f}s; credentials in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
