"""Exact decimal arithmetic for the results rules (RESULTS.md).

Sums and products are exact (a context with the maximum precision that traps
any inexact result).  Divisions are done on :class:`fractions.Fraction`, so the
one rounding RESULTS.md names (ROUND_HALF_UP to two decimals) is applied to the
exact quotient and never to an already-rounded intermediate value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from fractions import Fraction

ZERO = Decimal("0.00")
"""Zero written with two decimals; the start of every sum."""

_EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Exact sum, starting from ``0.00`` (so the result shows at least two decimals)."""
    total = ZERO
    for value in values:
        total = _EXACT.add(total, value)
    return total


def exact_product(left: Decimal, right: Decimal) -> Decimal:
    """Exact product of two decimals."""
    return _EXACT.multiply(left, right)


def round_half_up_2(value: Fraction) -> Decimal:
    """Round an exact rational to two decimals, ties away from zero (ROUND_HALF_UP)."""
    cents = math.floor(abs(value) * 100 + Fraction(1, 2))
    sign = "-" if value < 0 and cents != 0 else ""
    return Decimal(f"{sign}{cents}E-2")


def divide_round_2(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator`` computed exactly, then rounded half up to two decimals."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero")
    return round_half_up_2(Fraction(numerator) / Fraction(denominator))


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    """``100 x part / whole`` computed exactly, then rounded half up to two decimals."""
    if whole == 0:
        raise ZeroDivisionError("percentage of a zero whole")
    return round_half_up_2(Fraction(part) * 100 / Fraction(whole))


def decimal_places(value: Decimal) -> int:
    """Number of decimals the *value* needs (``1.500`` needs 1, ``2E+3`` needs 0).

    Only meaningful for finite values; works on any magnitude without rounding.
    """
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    places = -exponent
    for digit in reversed(digits):
        if places == 0 or digit != 0:
            break
        places -= 1
    if all(digit == 0 for digit in digits):
        return 0
    return places


def has_at_most_two_decimals(value: Decimal) -> bool:
    """True when the finite *value* is a whole number of hundredths."""
    return decimal_places(value) <= 2
