"""Money, exactly: Decimal in a context that traps any rounding, and costs at the ledger's scale.

A cost carries at most PLACES (12) decimal places: ClickHouse's ``Decimal(38, 12)``. In memory a
sum of costs may be an integer count of 10^-12 (``to_units``/``units_text``): exact and cheap to
add. Text is plain decimal, no exponent, no trailing zeros (``"0.15"``, ``"10"``)."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])  # any rounding is an error
PLACES = 12
UNITS = 10**PLACES  # 10^-12 units in one currency unit
assert PLACES == 12  # units_text's format writes 12 places


def money_str(d: Decimal) -> str:
    """Exact decimal text, no exponent, no trailing zeros ("0.15", "10")."""
    if not d:
        return "0"
    n = d.normalize(EXACT)
    s = str(n)  # same text as format(n, "f") unless str() chose an exponent; 3x cheaper
    return format(n, "f") if "E" in s else s


def to_units(cost: Decimal | str) -> int:
    """A cost as an integer count of 10^-12; more decimal places than that is an error."""
    d = Decimal(cost)
    units = d.scaleb(PLACES)
    if units != units.to_integral_value():
        raise ValueError(f"cost {cost} has more than {PLACES} decimal places")
    return int(units)


def units_text(units: int) -> str:
    """money_str of ``units`` * 10^-12, from the integer: exact, no exponent, no trailing zeros."""
    q, r = divmod(abs(units), UNITS)
    text = f"{q}.{r:012d}".rstrip("0") if r else str(q)  # 012: PLACES (a literal: this runs per total written)
    return "-" + text if units < 0 else text
