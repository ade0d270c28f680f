"""Code that vulture reports as unused but that is used where it cannot look.

`make lint` hands this file to vulture with the code: naming a thing here
counts as a use. Every entry is a real import or attribute, so mypy (also run
by `make lint`) fails once the name is gone and the entry has to go too.
Name only what a framework, a library or a string reaches; genuinely unused
code is deleted, not listed here.
"""

from __future__ import annotations

from decimal import Context
from types import FunctionType
from typing import Any, cast
from zipfile import ZipInfo

from auth_service import main as auth_main
from auth_service.api.schemas import TokenPairOut
from bulk_service import main as bulk_main
from bulk_service.jobs.sources import PartsFile
from gateway_service.proxy.connection import UpstreamConnection
from redis.commands.core import AsyncScript
from results_service import main as results_main
from results_service.api.result_models import ResultOut
from results_service.contracts.marks_changed import MarksChangedV1
from results_service.contracts.marks_import import ImportMode
from results_service.contracts.results_events import ResultsPublishedV1, ResultsUpdatedV1
from results_service.store import results as results_tables
from service_kit.messaging.tables import KitTables
from service_kit.service_credentials import _BearerFromTokens
from sqlalchemy.engine import ExceptionContext
from uvicorn import Server
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

# asyncio calls a Protocol's callbacks, and httptools its parser's, by name.
UpstreamConnection.connection_made
UpstreamConnection.data_received
UpstreamConnection.eof_received
UpstreamConnection.connection_lost
UpstreamConnection.pause_writing
UpstreamConnection.resume_writing
UpstreamConnection.on_message_begin
UpstreamConnection.on_header
UpstreamConnection.on_headers_complete
UpstreamConnection.on_body
UpstreamConnection.on_message_complete

# Worker app factories, named in a string ("auth_service.main:create_worker_app").
auth_main.create_worker_app
results_main.create_worker_app
bulk_main.create_worker_app

# Response and event fields: serialized for clients and consumers, never read here.
TokenPairOut.token_type
ResultOut.student_name
ResultsPublishedV1.chunk_count
ResultsUpdatedV1.chunk_count
MarksChangedV1.exam_published
# Enum values that arrive in requests and events, compared only by the other member.
ImportMode.ALL_OR_NOTHING

# Tables registered on their MetaData for the migrations and the schema tests.
# (Attributes that exist on instances only are named through a cast.)
results_tables.generation_runs
cast(KitTables, None).job_leases

# Attributes set for a library to read.
ExceptionContext.is_disconnect  # SQLAlchemy: treat the error as a disconnect
cast(AsyncScript, None).sha  # redis-py: the test forces a NOSCRIPT reload
Context.prec  # decimal: the test oracle's precision
cast(Server, None).should_exit  # uvicorn: the test stub's stop
cast(RequestResponseCycle, None).disconnected  # uvicorn: the kit protocol's refusal
cast(FunctionType, None).__annotations__  # FastStream: the AsyncAPI handler's payload type
_BearerFromTokens.async_auth_flow  # httpx: the service token on every call
_BearerFromTokens.sync_auth_flow  # httpx: refuses sync clients
cast(ZipInfo, None).compress_type  # zipfile: the XLSX tests' bombs are deflated
PartsFile.readable  # io: BufferedReader over the stored parts of an upload
PartsFile.readinto

# Names in tests and load tests that a framework reads: the sample service's table
# (shared/tests); locust's user class attributes and the exit code a listener sets.
_by_name: Any = object()
_by_name.widgets
_by_name.wait_time
_by_name.weight
_by_name.abstract
_by_name.process_exit_code
