"""The one definition of every user-facing number's allowed range.

The plugin's parameter parsing (``barqpay``, ``barqroute``...), the plugin's
options and the ``barq`` command line all check numbers here, so a range is
written once and every front end refuses the same values with the same words::

    from barq.limits import MAXPARTS, check_int
    maxparts = check_int(MAXPARTS, value)   # InvalidParams naming "maxparts" and 1..1000

Amounts are bounded by the bitcoin supply (21 million BTC in msat), which also
keeps every amount inside SQLite's signed 64-bit INTEGER. Strings a caller
gives (invoice, label, description, names) are bounded too (:class:`TextLimit`,
:func:`check_text`): a size, no lone UTF-16 surrogate, no NUL; a refusal
shows at most a short excerpt of the value. Nothing here does I/O.

Every range, as the README's parameter table lists it::

    amount_msat, partial_msat     1 .. 21e6 BTC in msat
    maxfee, exemptfee             0 .. 21e6 BTC in msat
    maxfeepercent                 0 .. 100 (%)
    maxparts                      1 .. 1000
    retry_for                     0.001 .. 2^32-1 s
    maxdelay                      1 .. 2^32-1 blocks
    riskfactor                    0 .. 2^32-1 (accepted for pay, unused)
    exclude                       at most 10,000 entries
    invstring                     at most 16,384 characters
    label                         at most 4,096 characters (or an integer)
    description                   at most 65,535 characters
    strategy                      at most 64 characters
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from barq.errors import InvalidParams, shown

__all__ = [
    "AMOUNT_MSAT",
    "AMOUNT_SAT",
    "CLI_CONCURRENCY",
    "CLI_JOBS",
    "CLI_PAYMENTS",
    "CLI_SESSION_TIMEOUT_S",
    "CLI_SIM_PAYMENTS",
    "CLI_SIM_SPEED",
    "DESCRIPTION",
    "ESTIMATOR_HALF_LIFE_S",
    "EXCLUDE_ENTRIES",
    "EXEMPTFEE_MSAT",
    "INVSTRING",
    "LABEL",
    "MAXDELAY",
    "MAXFEEPERCENT",
    "MAXFEE_MSAT",
    "MAXPARTS",
    "MAX_MSAT",
    "NETWORK_PORT",
    "PARTIAL_MSAT",
    "PAYER_NOTE",
    "QUANTITY",
    "RETRY_FOR_S",
    "RISKFACTOR",
    "SEED",
    "STRATEGY",
    "Range",
    "TextLimit",
    "check_float",
    "check_int",
    "check_percent_ppm",
    "check_text",
]

#: 21 million BTC in msat (2.1e18 < 2^63): no amount or fee may exceed it.
MAX_MSAT = 21_000_000 * 100_000_000 * 1000


class Range(msgspec.Struct, frozen=True, kw_only=True):
    """An allowed closed interval ``lo..hi`` for the parameter ``name``.

    ``unit`` is appended to the bounds in messages ("msat", "s", "blocks"...).
    """

    name: str
    lo: int | float
    hi: int | float
    unit: str = ""

    def describe(self) -> str:
        """``"between 1 and 1000"`` (with the unit when there is one)."""
        unit = f" {self.unit}" if self.unit else ""
        return f"between {_num(self.lo)} and {_num(self.hi)}{unit}"

    def named(self, name: str) -> Range:
        """The same interval under another name (an option's, a CLI flag's)."""
        return msgspec.structs.replace(self, name=name)


AMOUNT_MSAT = Range(name="amount_msat", lo=1, hi=MAX_MSAT, unit="msat")
#: pay's/xpay's ``partial_msat``: deliver only this much of the invoice's amount
PARTIAL_MSAT = AMOUNT_MSAT.named("partial_msat")
MAXFEE_MSAT = Range(name="maxfee", lo=0, hi=MAX_MSAT, unit="msat")
#: pay's ``exemptfee``: fees up to this are always allowed (with ``maxfeepercent``)
EXEMPTFEE_MSAT = MAXFEE_MSAT.named("exemptfee")
#: pay's ``maxfeepercent`` (and the ``barq-maxfee-percent`` option)
MAXFEEPERCENT = Range(name="maxfeepercent", lo=0, hi=100)
#: pay's ``riskfactor``: accepted (a tuning knob of pay's own router), not used
RISKFACTOR = Range(name="riskfactor", lo=0, hi=2**32 - 1)
#: entries of ``exclude``
EXCLUDE_ENTRIES = Range(name="exclude", lo=0, hi=10_000, unit="entries")
MAXPARTS = Range(name="maxparts", lo=1, hi=1000)
#: an offer's ``quantity`` (BOLT 12 ``invreq_quantity``, a tu64)
QUANTITY = Range(name="quantity", lo=1, hi=2**64 - 1)
#: seconds to keep retrying (pay/xpay take a u32; fractions are Barq's, for the simulator)
RETRY_FOR_S = Range(name="retry_for", lo=0.001, hi=2**32 - 1, unit="s")
#: total CLTV of a route in blocks (pay/xpay take a u32; lightningd refuses routes over its
#: max-locktime-blocks, 2016 by default)
MAXDELAY = Range(name="maxdelay", lo=1, hi=2**32 - 1, unit="blocks")
ESTIMATOR_HALF_LIFE_S = Range(name="estimator_half_life", lo=1, hi=2**32 - 1, unit="s")
SEED = Range(name="seed", lo=0, hi=2**32 - 1)
CLI_PAYMENTS = Range(name="payments", lo=1, hi=1_000_000)
#: whole satoshis (the ``barq`` command line's amounts), bounded like AMOUNT_MSAT
AMOUNT_SAT = Range(name="amount_sat", lo=1, hi=MAX_MSAT // 1000, unit="sat")
#: payments in flight at once from one payer in one runtime (``barq bench --concurrency``)
CLI_CONCURRENCY = Range(name="concurrency", lo=1, hi=10_000)
#: worker processes of ``barq bench --jobs``
CLI_JOBS = Range(name="jobs", lo=1, hi=1024)
#: wall seconds before ``barq bench`` gives up one session (one network, one strategy)
CLI_SESSION_TIMEOUT_S = Range(name="session_timeout", lo=1, hi=7 * 24 * 3600, unit="s")
#: concurrent payments of ``barq sim`` (one live table row each)
CLI_SIM_PAYMENTS = Range(name="payments", lo=1, hi=10_000)
#: simulated seconds per wall second of ``barq sim``'s live view (0: as fast as possible)
CLI_SIM_SPEED = Range(name="speed", lo=0, hi=1_000_000)
#: a TCP port (``barq bench --dask tcp://host:PORT``)
NETWORK_PORT = Range(name="port", lo=1, hi=65_535)


class TextLimit(msgspec.Struct, frozen=True, kw_only=True):
    """What a string parameter ``name`` may be: at most ``max_chars`` characters.

    ``numbers``: an integer is accepted too (as its decimal string), as CLN's
    ``label``. ``ascii``: only ASCII characters (invoice strings, names).
    """

    name: str
    max_chars: int
    numbers: bool = False
    ascii: bool = False


INVSTRING = TextLimit(name="invstring", max_chars=16_384, ascii=True)
LABEL = TextLimit(name="label", max_chars=4096, numbers=True)
DESCRIPTION = TextLimit(name="description", max_chars=65_535)
STRATEGY = TextLimit(name="strategy", max_chars=64, ascii=True)
PAYER_NOTE = TextLimit(name="payer_note", max_chars=65_535)


def _num(x: int | float) -> str:
    return f"{x:,}".replace(",", "_") if isinstance(x, int) and abs(x) >= 100_000 else f"{x:g}"


def _error(rng: Range, value: Any, why: str) -> InvalidParams:
    return InvalidParams(
        f"{rng.name}: {why}, got {shown(value)}",
        data={"param": rng.name, "min": rng.lo, "max": rng.hi},
    )


def check_int(rng: Range, value: Any) -> int:
    """``value`` as an int inside ``rng``.

    Accepts ints, integral floats and decimal strings (``"12"``); refuses
    bools, fractions and anything else.

    Raises:
        InvalidParams: not a whole number, or outside ``rng`` (the message names
            the parameter and the allowed range).
    """
    n: int | None = None
    if isinstance(value, bool):
        n = None
    elif isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and len(value) <= 40:
        text = value.strip()
        if text.lstrip("-").isdigit() and text.isascii():
            n = int(text)
    if n is None:
        raise _error(rng, value, f"must be a whole number {rng.describe()}")
    if not rng.lo <= n <= rng.hi:
        raise _error(rng, n, f"must be {rng.describe()}")
    return n


def check_float(rng: Range, value: Any) -> float:
    """``value`` as a finite float inside ``rng`` (ints, floats and decimal strings).

    Raises:
        InvalidParams: not a finite number, or outside ``rng``.
    """
    x: float | None = None
    if isinstance(value, bool):
        x = None
    elif isinstance(value, int | float):
        x = float(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            x = float(value.strip())
        except ValueError:
            x = None
    if x is None or not math.isfinite(x):
        raise _error(rng, value, f"must be a number {rng.describe()}")
    if not rng.lo <= x <= rng.hi:
        raise _error(rng, value, f"must be {rng.describe()}")
    return x


def check_percent_ppm(rng: Range, value: Any) -> int:
    """A percentage (``0.5``, ``"0.5"``, ``"1%"``) inside ``rng``, in parts per million.

    Exact (decimal, never a float round-trip); a fraction finer than 1 ppm
    is cut.

    Raises:
        InvalidParams: not a finite number, or outside ``rng``.
    """
    d: Decimal | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        text = str(value).strip().removesuffix("%") if len(str(value)) <= 40 else ""
        try:
            d = Decimal(text)
        except InvalidOperation:
            d = None
    if d is None or not d.is_finite():
        raise _error(rng, value, f"must be a percentage {rng.describe()}")
    if not rng.lo <= d <= rng.hi:
        raise _error(rng, value, f"must be {rng.describe()}")
    return int(d * 10_000)


def check_text(limit: TextLimit, value: Any) -> str:
    """``value`` as a string that is safe to store, log and hand to lightningd.

    Raises:
        InvalidParams: not a string (nor an integer, when ``limit.numbers``),
            longer than ``limit.max_chars``, holding a lone UTF-16 surrogate
            or a NUL character, or (``limit.ascii``) anything but ASCII. The
            message shows at most a short excerpt of the value.
    """
    name = limit.name
    data = {"param": name, "max_chars": limit.max_chars}
    if limit.numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        kind = "a string or an integer" if limit.numbers else "a string"
        raise InvalidParams(f"{name}: must be {kind}, got {shown(value)}", data=data)
    if len(value) > limit.max_chars:
        raise InvalidParams(
            f"{name}: too long: {len(value)} characters, at most {limit.max_chars}", data=data
        )
    if "\x00" in value:
        raise InvalidParams(f"{name}: must not contain a NUL character", data=data)
    if limit.ascii and not value.isascii():
        raise InvalidParams(f"{name}: must be ASCII, got {shown(value)}", data=data)
    bad = next((i for i, c in enumerate(value) if 0xD800 <= ord(c) <= 0xDFFF), None)
    if bad is not None:
        raise InvalidParams(
            f"{name}: holds a lone UTF-16 surrogate (U+{ord(value[bad]):04X} at index {bad}): "
            f"not valid Unicode text",
            data=data,
        )
    return value
