"""Applying one chunk of a bulk users import (``users.import_chunk``) and answering it.

Runs in the consumer's transaction (with the message's inbox claim): the users,
their events, the processed-chunk record and the answer commit together or not
at all. Rows are idempotent on the canonical email: a re-run of the same file
creates no one twice and changes nothing that is equal. An existing user's
password is never changed by an import (a re-run must not reset passwords a
user has set since), nor their student number (results keys marks by it).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from service_kit.detail_codes import DetailCode
from service_kit.errors import ErrorCode, ErrorDetail
from service_kit.messaging.failures import TransientError
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.contracts import (
    ImportRowError,
    UserImportChunkResultV1,
    UserImportChunkV1,
    UserImportRow,
)
from auth_service.domain.passwords import password_problems
from auth_service.domain.tokens import new_secret_token, token_digest
from auth_service.domain.users import (
    EmailAddress,
    Role,
    User,
    clean_student_number,
    full_name_problems,
    parsed_email,
    parsed_role,
    role_change_problems,
    student_number_problems,
)
from auth_service.hashing import PasswordHashing
from auth_service.messaging import events
from auth_service.store import import_chunks as chunks_store
from auth_service.store import invitations as invitations_store
from auth_service.store import revocations as revocations_store
from auth_service.store import users as users_store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Row:
    source: UserImportRow
    email: EmailAddress | None = None
    role: Role | None = None
    student_number: str | None = None
    errors: list[ImportRowError] = field(default_factory=list)

    def fail(self, column: str, code: str, message: str, value: str = "") -> None:
        self.errors.append(
            ImportRowError(
                row=self.source.row, column=column, code=code, message=message, value=value[:200]
            )
        )


def _from_details(row: _Row, details: list[ErrorDetail]) -> None:
    for detail in details:
        # Never the password as a value; the other fields are what the file held.
        value = "" if detail.field == "password" else str(getattr(row.source, detail.field, ""))
        row.fail(detail.field, detail.code.value, detail.message, value or "")


def _validated(source: UserImportRow) -> _Row:
    row = _Row(source)
    email, details = parsed_email("email", source.email)
    role, role_details = parsed_role("role", source.role.strip().lower())
    details += role_details
    details += full_name_problems("full_name", source.full_name)
    number = clean_student_number(source.student_number)
    if role is not None:
        details += student_number_problems(role, number)
    if source.password:
        details += password_problems("password", source.password)
    _from_details(row, details)
    row.email, row.role, row.student_number = email, role, number
    return row


def _mark_duplicates(rows: list[_Row]) -> None:
    """DUPLICATE_ENTRY on every row of an email (canonical) or student number met twice."""
    for column in ("email", "student_number"):
        groups: dict[str, list[_Row]] = defaultdict(list)
        for row in rows:
            if column == "email":
                key = row.email.canonical if row.email is not None else None
            else:
                key = row.student_number if row.role == Role.STUDENT else None
            if key:
                groups[key].append(row)
        for same in groups.values():
            if len(same) > 1:
                numbers = ", ".join(str(r.source.row) for r in same)
                for row in same:
                    value = row.source.email if column == "email" else row.student_number or ""
                    row.fail(
                        column,
                        DetailCode.DUPLICATE_ENTRY.value,
                        f"the same {column.replace('_', ' ')} is on rows {numbers}",
                        value,
                    )


@dataclass(frozen=True, slots=True)
class _Plan:
    creates: list[_Row]
    updates: list[tuple[_Row, User, dict[str, object]]]
    unchanged: int


async def _plan(session: AsyncSession, rows: list[_Row], requester: uuid.UUID) -> _Plan:
    valid = [r for r in rows if not r.errors and r.email is not None and r.role is not None]
    existing = await chunks_store.users_by_canonical_email(
        session, {r.email.canonical for r in valid if r.email is not None}
    )
    holders = await chunks_store.student_number_holders(
        session, {r.student_number for r in valid if r.student_number}
    )
    creates: list[_Row] = []
    updates: list[tuple[_Row, User, dict[str, object]]] = []
    unchanged = 0
    for row in valid:
        assert row.email is not None and row.role is not None
        user = existing.get(row.email.canonical)
        if row.student_number:
            # Numbers repeated within the chunk already failed (DUPLICATE_ENTRY).
            holder = holders.get(row.student_number)
            if holder is not None and holder != row.email.canonical:
                row.fail(
                    "student_number",
                    ErrorCode.STUDENT_NUMBER_TAKEN.value,
                    "another user has this student number",
                    row.student_number,
                )
                continue
        if user is None:
            creates.append(row)
            continue
        changes: dict[str, object] = {}
        if row.source.full_name.strip() != user.full_name:
            changes["full_name"] = row.source.full_name.strip()
        if row.role != user.role:
            problems = role_change_problems(user, row.role)
            if problems:
                _from_details(row, problems)
                continue
            if user.id == requester:
                # As PATCH /users: the last admin must not lock everybody out.
                row.fail(
                    "role",
                    ErrorCode.CONFLICT.value,
                    "you cannot demote your own account",
                    row.source.role,
                )
                continue
            changes["role"] = row.role.value
        if row.student_number != user.student_number:
            row.fail(
                "student_number",
                DetailCode.NOT_ALLOWED.value,
                "an import cannot change an existing user's student number",
                row.student_number or "",
            )
            continue
        if changes:
            updates.append((row, user, changes))
        else:
            unchanged += 1
    return _Plan(creates, updates, unchanged)


def _answer(
    chunk: UserImportChunkV1, *, applied: bool, ok: int, unchanged: int, rows: list[_Row]
) -> UserImportChunkResultV1:
    errors = sorted((e for r in rows for e in r.errors), key=lambda e: e.row)
    return UserImportChunkResultV1(
        job_id=chunk.job_id,
        chunk_no=chunk.chunk_no,
        dry_run=chunk.dry_run,
        applied=applied,
        rows_ok=ok,
        rows_unchanged=unchanged,
        rows_failed=sum(1 for r in rows if r.errors),
        errors=errors,
    )


async def import_user_chunk(
    session: AsyncSession,
    hashing: PasswordHashing,
    invitation_ttl_seconds: int,
    chunk: UserImportChunkV1,
) -> UserImportChunkResultV1:
    """Applies the chunk once per (job, chunk) and writes its answer to the outbox."""
    stored = await chunks_store.processed_answer(session, chunk.job_id, chunk.chunk_no)
    if stored is not None:
        answer = UserImportChunkResultV1.model_validate(stored)
        await add_event(session, answer)
        return answer
    if not await _is_active_admin(session, chunk):
        answer = UserImportChunkResultV1(
            job_id=chunk.job_id,
            chunk_no=chunk.chunk_no,
            dry_run=chunk.dry_run,
            applied=False,
            rows_ok=0,
            rows_unchanged=0,
            rows_failed=len(chunk.rows),
            errors=[
                ImportRowError(
                    row=0,
                    column="",
                    code=ErrorCode.FORBIDDEN.value,
                    message="Only an active admin may import users.",
                )
            ],
        )
    else:
        answer = await _apply(session, hashing, invitation_ttl_seconds, chunk)
    if not await chunks_store.save_answer(
        session, chunk.job_id, chunk.chunk_no, answer.model_dump(mode="json")
    ):
        raise TransientError(f"users chunk {chunk.job_id}/{chunk.chunk_no} applied concurrently")
    await add_event(session, answer)
    log.info(
        "users import chunk answered",
        extra={
            "job_id": str(chunk.job_id),
            "chunk_no": chunk.chunk_no,
            "applied": answer.applied,
            "rows_ok": answer.rows_ok,
            "rows_unchanged": answer.rows_unchanged,
            "rows_failed": answer.rows_failed,
        },
    )
    return answer


async def _is_active_admin(session: AsyncSession, chunk: UserImportChunkV1) -> bool:
    """The role the job was created with, and the requester's account now (a user
    demoted or deactivated since must not go on creating accounts)."""
    if chunk.requested_by.role != Role.ADMIN.value:
        return False
    user = await users_store.get_user(session, chunk.requested_by.user_id)
    return user is not None and user.active and user.role == Role.ADMIN


async def _apply(
    session: AsyncSession,
    hashing: PasswordHashing,
    invitation_ttl_seconds: int,
    chunk: UserImportChunkV1,
) -> UserImportChunkResultV1:
    # Validate-then-apply: every check runs before the first write, and the
    # writes cannot fail on a row's data (inserts are ON CONFLICT DO NOTHING),
    # so one bad row never aborts the transaction the good ones are in.
    rows = [_validated(source) for source in chunk.rows]
    _mark_duplicates(rows)
    plan = await _plan(session, rows, chunk.requested_by.user_id)
    would_change = len(plan.creates) + len(plan.updates)
    any_error = any(r.errors for r in rows)
    if chunk.dry_run or (chunk.mode == "all_or_nothing" and any_error):
        return _answer(chunk, applied=False, ok=would_change, unchanged=plan.unchanged, rows=rows)
    for row in plan.creates:
        assert row.email is not None and row.role is not None
        # Cost: one Argon2id hash per created row with a password, at the OWASP
        # parameters tens of milliseconds of CPU and 19 MiB in one worker of
        # auth's hashing pool (off the event loop, as sign-ups and resets do):
        # a 1000-row chunk of passwords is tens of seconds. One at a time, so
        # the import leaves the pool's other workers to sign-ins. Invited rows,
        # updates, unchanged rows, dry runs and refused chunks hash nothing.
        password = row.source.password
        password_hash = await hashing.hash(password) if password else None
        user = await users_store.insert_user(
            session,
            email=row.email,
            full_name=row.source.full_name.strip(),
            role=row.role,
            student_number=row.student_number,
            password_hash=password_hash,
            active=password_hash is not None,
        )
        if user is None:
            # The email or number was taken by a concurrent create since the
            # plan: roll the chunk back and retry it, when the plan sees that
            # user (an update, or STUDENT_NUMBER_TAKEN) and all_or_nothing
            # stays all or nothing.
            raise TransientError(f"users chunk {chunk.job_id}/{chunk.chunk_no}: row conflict")
        # As Accounts.create_user: user.created, and without a password an
        # invitation and user.invited, in this transaction's outbox.
        await events.user_created(session, user)
        if password_hash is None:
            token = new_secret_token()
            expires_at = await invitations_store.add_invitation(
                session, user.id, token_digest(token), invitation_ttl_seconds
            )
            await events.user_invited(session, user, token, expires_at)
    for _, user, changes in plan.updates:
        if "role" in changes:
            await revocations_store.raise_access_epoch(session, user.id, "role_changed")
        updated = await users_store.update_user(session, user.id, **changes)
        await events.user_updated(session, updated)
    return _answer(chunk, applied=True, ok=would_change, unchanged=plan.unchanged, rows=rows)
