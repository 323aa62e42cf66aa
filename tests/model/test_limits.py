"""The shared ranges: one message shape for every front end."""

from __future__ import annotations

import pytest

from barq.errors import InvalidParams
from barq.limits import AMOUNT_MSAT, MAX_MSAT, MAXPARTS, RETRY_FOR_S, check_float, check_int


def test_int_inside_and_at_the_bounds() -> None:
    assert check_int(MAXPARTS, 1) == 1
    assert check_int(MAXPARTS, "1000") == 1000
    assert check_int(MAXPARTS, 7.0) == 7


@pytest.mark.parametrize(
    "value", [0, 1001, -1, "x", True, 1.5, None, "9" * 100, [], "\uff11\uff12"]
)
def test_int_refused_with_name_and_range(value: object) -> None:
    with pytest.raises(InvalidParams) as err:
        check_int(MAXPARTS, value)
    assert err.value.message.startswith("maxparts: must be ")
    assert "between 1 and 1000" in err.value.message
    assert err.value.data["param"] == "maxparts"
    assert len(err.value.message) < 200


def test_amounts_stop_at_the_bitcoin_supply() -> None:
    assert check_int(AMOUNT_MSAT, MAX_MSAT) == MAX_MSAT
    assert MAX_MSAT < 2**63
    with pytest.raises(InvalidParams, match="amount_msat: must be between 1 and"):
        check_int(AMOUNT_MSAT, 2**64)


def test_float_range_and_non_finite() -> None:
    assert check_float(RETRY_FOR_S, "2.5") == 2.5
    for bad in (0, -1, float("nan"), float("inf"), "soon"):
        with pytest.raises(InvalidParams, match=r"^retry_for: must be"):
            check_float(RETRY_FOR_S, bad)


def test_renamed_range_keeps_the_interval() -> None:
    flag = MAXPARTS.named("--maxparts")
    with pytest.raises(InvalidParams, match=r"^--maxparts: must be between 1 and 1000, got 5000"):
        check_int(flag, 5000)
