"""Dependencies of the notifier's routers: the service's components."""

from __future__ import annotations

from typing import Annotated

from service_kit.db import Database
from service_kit.host import Provided

from notifier_service.settings import NotifierSettings
from notifier_service.streams.hub import StreamHub
from notifier_service.streams.slots import StreamSlots

DB = Annotated[Database, Provided(Database)]
Hub = Annotated[StreamHub, Provided(StreamHub)]
Slots = Annotated[StreamSlots, Provided(StreamSlots)]
Settings = Annotated[NotifierSettings, Provided(NotifierSettings)]
