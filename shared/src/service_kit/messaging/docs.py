"""Event documents generated from event catalogs, and the check that they are current.

Per service, from its :class:`~service_kit.messaging.catalog.EventCatalog`:
``docs/asyncapi/<service>.yaml`` and the service's section of ``docs/events.md``.
Regenerate them all (the Makefile lists every service's catalog)::

    make docs
    # which runs, from the repository root:
    python -m service_kit.messaging.docs auth_service.contracts:EVENTS ...

``--check`` writes nothing and exits 1 when a document differs. Each service
has a drift test calling :func:`stale_event_docs`, so docs cannot drift.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from service_kit.messaging.asyncapi import asyncapi_document
from service_kit.messaging.catalog import EventCatalog
from service_kit.messaging.events_page import with_section

EVENTS_PAGE = Path("docs/events.md")
ASYNCAPI_DIR = Path("docs/asyncapi")
REGENERATE_COMMAND = "make docs"


def generated_documents(catalog: EventCatalog, root: Path) -> dict[Path, str]:
    """What the files under ``root`` (a repository root) should hold for ``catalog``."""
    page = root / EVENTS_PAGE
    current = page.read_text(encoding="utf-8") if page.exists() else "# Events\n"
    return {
        root / ASYNCAPI_DIR / f"{catalog.service}.yaml": asyncapi_document(catalog),
        page: with_section(current, catalog),
    }


def stale_event_docs(catalog: EventCatalog, root: Path) -> list[Path]:
    """The documents under ``root`` that differ from what ``catalog`` generates."""
    return [
        path
        for path, text in generated_documents(catalog, root).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def write_event_docs(catalog: EventCatalog, root: Path) -> list[Path]:
    """Writes the documents that differ; returns them."""
    written = []
    for path, text in generated_documents(catalog, root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale_message(stale: list[Path]) -> str:
    names = ", ".join(str(path) for path in stale)
    return f"{names} differ from the event catalog: regenerate with `{REGENERATE_COMMAND}`"


def load_catalog(reference: str) -> EventCatalog:
    """The catalog at ``package.module:NAME``."""
    module_name, _, attribute = reference.partition(":")
    catalog = getattr(importlib.import_module(module_name), attribute or "EVENTS")
    if not isinstance(catalog, EventCatalog):
        raise TypeError(f"{reference} is not an EventCatalog")
    return catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("catalogs", nargs="+", help="package.module:NAME of each EventCatalog")
    parser.add_argument("--root", type=Path, default=Path(), help="repository root")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale: list[Path] = []
    for reference in args.catalogs:
        catalog = load_catalog(reference)
        if args.check:
            stale += stale_event_docs(catalog, args.root)
        else:
            for path in write_event_docs(catalog, args.root):
                print(f"updated {path}")
    if stale:
        print(stale_message(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
