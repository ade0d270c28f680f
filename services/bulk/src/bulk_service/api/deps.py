"""Dependencies of bulk's routers: the caller, their role, and the service's components."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from service_kit.db import Database
from service_kit.host import Provided
from service_kit.security import Principal, require_role

from bulk_service.clients.results import ResultsClient
from bulk_service.settings import BulkSettings

DB = Annotated[Database, Provided(Database)]
Results = Annotated[ResultsClient, Provided(ResultsClient)]
Settings = Annotated[BulkSettings, Provided(BulkSettings)]

AdminUser = Annotated[Principal, Depends(require_role("admin"))]
StaffUser = Annotated[Principal, Depends(require_role("admin", "examiner"))]
