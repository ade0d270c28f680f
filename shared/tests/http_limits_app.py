"""A kit-built app served by the kit's real server in the HTTP protocol tests."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from service_kit.app import create_app as create_kit_app
from service_kit.settings import KitSettings


class Blob(BaseModel):
    data: str


def create_app() -> FastAPI:
    router = APIRouter()

    @router.get("/items")
    async def list_items(request: Request) -> dict[str, int]:
        return {
            "header_count": len(request.headers.raw),
            "query_bytes": len(request.scope["query_string"]),
        }

    @router.post("/items")
    async def create_item(blob: Blob) -> dict[str, int]:
        return {"data_bytes": len(blob.data)}

    settings = KitSettings(service_name="http-limits-test", environment="test", log_level="ERROR")
    return create_kit_app(settings, title="http limits", version="1", routers=[router])
