"""Decimals at the JSON edge: numbers with at most two decimals (API.md Conventions).

Values stay ``Decimal`` everywhere inside the service; only serialisation
turns them into JSON numbers. The value is first rounded to two decimals
(ROUND_HALF_UP; a no-op for what NUMERIC(_, 2) columns hold), then converted:
a two-decimal value of up to 15 significant digits round-trips through a
binary double exactly, and the shortest repr the JSON encoder writes is that
same two-decimal text (``79.5``, ``83.0``, ``12345.67``). No arithmetic ever
happens on the float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

TWO_PLACES = Decimal("0.01")


def json_number(value: Decimal) -> float:
    return float(value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP))


JsonDecimal = Annotated[Decimal, PlainSerializer(json_number, return_type=float, when_used="json")]
"""A ``Decimal`` field that leaves the API as a JSON number with at most two decimals."""


def _json_number_only(value: Any) -> Any:
    # Lax Decimal parsing would take "1_0", "١٢" (Arabic-Indic digits) or " 75 "
    # as numbers, and True as 1: API.md says JSON numbers, so only those pass.
    # A JSON number arrives as int or float; pydantic makes the Decimal from the
    # float's shortest repr, which is the text sent (79.995 stays 79.995).
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise PydanticCustomError("decimal_type", "A JSON number was expected.")
    return value


JsonNumberIn = Annotated[
    Decimal, BeforeValidator(_json_number_only), WithJsonSchema({"type": "number"})
]
"""A ``Decimal`` request field: a JSON number and nothing else (else 422 ``DECIMAL_TYPE``)."""
