"""Profile of results applying bulk's ``marks.import_chunk`` commands, without bulk
(ADR 0023).

In a throwaway database migrated with results' real migrations: seeds the
students read model (random uuid4 ids, as auth makes them), one exam of
``--subjects`` subjects, then applies a long file's rows (student by student,
each student's subjects together, as bulk chunks a long CSV) through the
production path, chunk after chunk:

* the consumer's decoding: the JSON body bulk sends, ``EventEnvelope`` and
  ``MarkImportChunkV1`` validation, as the kit's consumer does;
* ``import_mark_chunk`` in one transaction (with the inbox claim), every SQL
  statement timed (SQLAlchemy cursor events), and the commit;
* WAL bytes per chunk (the server's insert position: other work on the server
  adds to it) and checkpoints (``pg_stat_bgwriter``).

At ``--explain-at`` marks stored (default 600,000) it runs ``--explain`` chunks
with the chunk statement under ``EXPLAIN (ANALYZE, BUFFERS, WAL)`` (in a
savepoint rolled back, then applied for real) and prints the plans.
``--auto-explain MS`` logs the real executions' plans (the prepared
statement's generic plan, full-page images, trigger times) to the server log.
``--baseline-ref REF`` applies every odd chunk with the chunk statement of
another commit (or a copy of the store module): this machine is shared, so
only figures taken side by side under the same load compare.

Usage: ``uv run --frozen python scripts/profile_import_apply.py [--students 125000]
[--subjects 8] [--chunk-rows 5000] [--explain-at 600000] [--explain 2]
[--stop-after N (chunks)] [--baseline-ref HEAD~1] [--auto-explain 0]
[--set NAME=VALUE]``. Prints a line per 20 chunks and a summary (ms per chunk by
statement, medians over the chunks after ``--explain-at``, per variant).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import types
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from results_service.contracts import MarkImportChunkV1
from results_service.settings import ResultsSettings
from results_service.store import mark_imports as store_imports
from results_service.store.students import StudentRecord
from results_service.usecases import mark_imports as usecase
from service_kit.db import Database
from service_kit.messaging.envelope import EventEnvelope
from service_kit.messaging.inbox import claim_message
from service_kit.migrations import upgrade_to_head
from service_kit.testing import create_database, drop_database, unique_database_name
from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = ROOT / "services/results/alembic.ini"
SERVER = "postgresql://postgres@127.0.0.1:5432"


class _NobodyElse:
    async def lookup(self, numbers: Sequence[str]) -> list[StudentRecord]:
        return []


class StatementTimer:
    """Milliseconds per SQL statement (by a short label) of the current chunk."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self._started: float = 0.0

    def attach(self, db: Database) -> None:
        engine = db.primary.sync_engine

        def before(*_: Any) -> None:
            self._started = time.perf_counter()

        def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            self.current[_label(statement)] += (time.perf_counter() - self._started) * 1000

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)

    def take(self) -> dict[str, float]:
        taken, self.current = dict(self.current), defaultdict(float)
        return taken


def _label(statement: str) -> str:
    s = " ".join(statement.split())
    if "WITH incoming AS" in s:
        return "chunk statement"
    if s.startswith("EXPLAIN"):
        return "explain"
    for needle, label in (
        ("processed_chunks", "processed chunk"),
        ("inbox", "inbox claim"),
        ("outbox", "outbox"),
        ("FOR UPDATE", "exam lock+read"),
        ("marks_version", "version bump"),
        ("students", "unknown students"),
        ("subjects", "exam read"),
        ("grade_bands", "exam read"),
        ("SAVEPOINT", "savepoint"),
    ):
        if needle in s:
            return label
    return s[:40]


def _payload(
    job_id: uuid.UUID,
    chunk_no: int,
    exam_id: uuid.UUID,
    admin: uuid.UUID,
    rows: list[tuple[int, str, str, str]],
) -> bytes:
    """The message body bulk's outbox relay publishes for a chunk."""
    data = {
        "job_id": str(job_id),
        "chunk_no": chunk_no,
        "exam_id": str(exam_id),
        "mode": "partial",
        "dry_run": False,
        "requested_by": {"user_id": str(admin), "role": "admin"},
        "rows": [
            {"row": r, "student_number": n, "subject_code": c, "status": "present", "mark": m}
            for r, n, c, m in rows
        ],
    }
    envelope = {
        "id": str(uuid.uuid4()),
        "type": MarkImportChunkV1.event_type,
        "version": MarkImportChunkV1.event_version,
        "occurred_at": "2026-12-06T00:00:00Z",
        "producer": "bulk",
        "correlation_id": None,
        "data": data,
    }
    return json.dumps(envelope).encode()


async def _seed(url: str, students: int, subjects: list[str]) -> tuple[uuid.UUID, uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "students",
            schema_name="results",
            columns=["user_id", "student_number", "full_name", "active", "source_version"],
            records=[(uuid.uuid4(), f"L{i:07d}", f"Student {i}", True, 1) for i in range(students)],
        )
        exam_id, admin = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO results.exams (id, code, name, created_by) VALUES ($1, $2, $3, $4)",
            exam_id,
            f"PROF-{exam_id.hex[:8]}",
            "Profile",
            admin,
        )
        await conn.executemany(
            "INSERT INTO results.subjects (exam_id, code, position, name, max_mark, pass_mark)"
            " VALUES ($1, $2, $3, $2, 100, 40)",
            [(exam_id, code, i) for i, code in enumerate(subjects)],
        )
        await conn.execute("ANALYZE")
        return exam_id, admin
    finally:
        await conn.close()


async def _server_counters(conn: asyncpg.Connection) -> dict[str, float]:
    row = await conn.fetchrow(
        # pg_stat_wal lags (a backend reports at most once a second): WAL bytes by
        # the insert position; full-page images per statement are in the EXPLAINs.
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0') AS wal_bytes, "
        "b.checkpoints_timed + b.checkpoints_req AS checkpoints "
        "FROM pg_stat_bgwriter b"
    )
    return {k: float(v) for k, v in row.items()}


def _statement_at(ref: str) -> str:
    """The chunk statement of results' store module at commit ``ref`` (or in the file
    ``ref``)."""
    if Path(ref).is_file():  # or a copy of the module
        source = Path(ref).read_text()
    else:
        source = subprocess.run(
            ["git", "show", f"{ref}:services/results/src/results_service/store/mark_imports.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    module = types.ModuleType("baseline_mark_imports")
    sys.modules[module.__name__] = module  # its dataclasses look their module up
    try:
        exec(compile(source, module.__name__, "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return str(module._APPLY_CHUNK)


class _Rollback(Exception):
    pass


def _explaining_apply(real: Any, timer: StatementTimer, plans: list[str]) -> Any:
    """``apply_chunk_rows``, with its statement first run under ``EXPLAIN (ANALYZE,
    BUFFERS, WAL)`` in a savepoint rolled back (so it is then applied for real)."""

    async def wrapped(session: Any, **kwargs: Any) -> Any:
        execute = session.execute

        async def explain_first(statement: Any, params: Any = None, **kw: Any) -> Any:
            sql = str(statement)
            if "WITH incoming AS" in sql:
                try:
                    async with session.begin_nested():
                        started = time.perf_counter()
                        result = await execute(
                            text("EXPLAIN (ANALYZE, BUFFERS, WAL) " + sql), params
                        )
                        plans.append(
                            "\n".join(r[0] for r in result)
                            + f"\n(explained in {(time.perf_counter() - started) * 1000:.0f} ms)"
                        )
                        raise _Rollback
                except _Rollback:
                    pass
                timer.take()  # the explain's own time is not the chunk's
            return await execute(statement, params, **kw)

        session.execute = explain_first
        try:
            return await real(session, **kwargs)
        finally:
            del session.execute

    return wrapped


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=125_000)
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=5000)
    parser.add_argument("--explain-at", type=int, default=600_000)
    parser.add_argument("--explain", type=int, default=2)
    parser.add_argument("--stop-after", type=int, help="chunks to apply at most")
    parser.add_argument(
        "--baseline-ref",
        metavar="GIT_REF",
        help="alternate chunks with the chunk statement of results' store at this commit "
        "(or in this copy of the module) on odd chunks, to compare both on one database "
        "under the same load",
    )
    parser.add_argument(
        "--auto-explain",
        type=int,
        metavar="MS",
        help="log the plans (ANALYZE, BUFFERS, WAL) of the applying connection's statements "
        "slower than MS to the server's log (auto_explain; needs a superuser)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a session setting of the applying connection (to compare, e.g. plan_cache_mode)",
    )
    args = parser.parse_args()
    subjects = [f"S{i}" for i in range(1, args.subjects + 1)]
    name = unique_database_name("profile_import")
    url = await create_database(name)
    try:
        await upgrade_to_head(ALEMBIC_INI, url)
        plain_url = f"{SERVER}/{name}"
        exam_id, admin = await _seed(plain_url, args.students, subjects)
        settings = ResultsSettings(
            environment="test",
            log_json=False,
            database_url=url,
            db_pool_size=2,
            run_workers=False,
        )
        db = Database(settings)
        session_settings = dict(item.split("=", 1) for item in args.set)
        if args.auto_explain is not None:
            session_settings |= {
                "auto_explain.log_min_duration": str(args.auto_explain),
                "auto_explain.log_analyze": "on",
                "auto_explain.log_buffers": "on",
                "auto_explain.log_wal": "on",
                "auto_explain.log_triggers": "on",
            }
        if session_settings:

            def on_connect(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                if args.auto_explain is not None:
                    cursor.execute("LOAD 'auto_explain'")
                for key, value in session_settings.items():
                    cursor.execute(f"SET {key} = '{value}'")
                cursor.close()

            event.listen(db.primary.sync_engine, "connect", on_connect)
        timer = StatementTimer()
        timer.attach(db)
        stats = await asyncpg.connect(plain_url)
        job_id = uuid.uuid4()
        rows = [
            (2 + i * len(subjects) + j, f"L{i:07d}", code, f"{(i * 7 + j * 13) % 100}.5")
            for i in range(args.students)
            for j, code in enumerate(subjects)
        ]
        chunks = [rows[k : k + args.chunk_rows] for k in range(0, len(rows), args.chunk_rows)][
            : args.stop_after
        ]
        per_chunk: list[dict[str, float]] = []
        plans: list[str] = []
        stored = 0
        explained = 0
        real_apply = usecase.apply_chunk_rows
        current_sql = store_imports._APPLY_CHUNK
        baseline_sql = _statement_at(args.baseline_ref) if args.baseline_ref else None
        run_started = time.perf_counter()
        for chunk_no, chunk_rows in enumerate(chunks):
            body = _payload(job_id, chunk_no, exam_id, admin, chunk_rows)
            before = await _server_counters(stats)
            t0 = time.perf_counter()
            envelope = EventEnvelope.from_body(body)
            chunk = MarkImportChunkV1.model_validate(envelope.data)
            decode_ms = (time.perf_counter() - t0) * 1000
            explain = stored >= args.explain_at and explained < args.explain
            variant = "baseline" if baseline_sql and chunk_no % 2 else "current"
            store_imports._APPLY_CHUNK = baseline_sql if variant == "baseline" else current_sql
            usecase.apply_chunk_rows = (  # type: ignore[assignment]
                _explaining_apply(real_apply, timer, plans) if explain else real_apply
            )
            t1 = time.perf_counter()
            async with db.transaction() as session:
                await claim_message(session, envelope.id, "profile", schema="results")
                answer = await usecase.import_mark_chunk(session, _NobodyElse(), chunk)
                t_body = time.perf_counter()
                timings = timer.take()
            commit_ms = (time.perf_counter() - t_body) * 1000
            total_ms = (time.perf_counter() - t1) * 1000
            after = await _server_counters(stats)
            assert answer.rows_ok == len(chunk_rows), answer
            stored += answer.rows_ok
            explained += explain
            sql_ms = sum(timings.values())
            record = {
                "stored": stored,
                "decode": decode_ms,
                **timings,
                "commit": commit_ms,
                "python (rest)": total_ms - commit_ms - sql_ms,
                "total": total_ms + decode_ms,
                "wal MB": (after["wal_bytes"] - before["wal_bytes"]) / 2**20,
                "checkpoints": after["checkpoints"] - before["checkpoints"],
                "explain": float(explain),
                "variant": variant,
            }
            per_chunk.append(record)
            if chunk_no % 20 == 0 or explain:
                print(
                    f"{variant[:4]} chunk {chunk_no:4d} stored {stored:9,d}"
                    f" total {record['total']:6.0f} ms"
                    f" statement {timings.get('chunk statement', 0):6.0f} ms"
                    f" commit {commit_ms:5.0f} ms decode {decode_ms:4.0f} ms"
                    f" wal {record['wal MB']:5.1f} MB"
                    f" ckpt {record['checkpoints']:.0f}",
                    flush=True,
                )
        elapsed = time.perf_counter() - run_started
        usecase.apply_chunk_rows = real_apply  # type: ignore[assignment]
        for plan in plans:
            print("\n" + plan)
        for variant in ("current", "baseline") if baseline_sql else ("current",):
            late = [
                r
                for r in per_chunk
                if r["stored"] > args.explain_at and not r["explain"] and r["variant"] == variant
            ] or [r for r in per_chunk if r["variant"] == variant]
            keys = sorted({k for r in late for k in r} - {"stored", "explain", "variant"})
            print(
                f"\n{variant}: {len(per_chunk)} chunks, {stored:,} marks in {elapsed:.1f} s "
                f"({stored / elapsed:,.0f} rows/s); per chunk over the {len(late)} chunks "
                f"after {args.explain_at:,} marks (median / mean):"
            )
            for key in keys:
                values = [float(r.get(key, 0.0)) for r in late]
                print(
                    f"  {key:22s} {statistics.median(values):8.1f} {statistics.mean(values):8.1f}"
                )
        await stats.close()
        await db.dispose()
    finally:
        await drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
