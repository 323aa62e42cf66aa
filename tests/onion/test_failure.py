"""Peeling onion errors: ChaCha20 (RFC 8439), the BOLT 4 error vector, CLN's own replies."""

from __future__ import annotations

from typing import Any

import pytest
from onion_data import load_json, vector_plan

from barq.model import Hop, Route
from barq.onion import ClearFinal, OnionFailure, build_onion, unwrap_onion_error
from barq.onion.failure import chacha20_stream, generate_key

KEY = bytes(range(32))
INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = 0x400F
INVALID_ONION_BLINDING = 0xC018


def test_chacha20_block_rfc8439_2_3_2() -> None:
    block = chacha20_stream(KEY, 64, nonce=bytes.fromhex("000000090000004a00000000"), counter=1)
    assert block.hex() == (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    )


def test_chacha20_encryption_rfc8439_2_4_2() -> None:
    text = (
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
        b"for the future, sunscreen would be it."
    )
    stream = chacha20_stream(
        KEY, len(text), nonce=bytes.fromhex("000000000000004a00000000"), counter=1
    )
    assert bytes(a ^ b for a, b in zip(text, stream, strict=True)).hex() == (
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
        "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
        "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
        "5af90bbf74a35be6b40b8eedf2785e42874d"
    )
    with pytest.raises(ValueError, match="32-byte key"):
        chacha20_stream(b"short", 1)


def _error_vector() -> dict[str, Any]:
    out: dict[str, Any] = load_json("onion-error-test.json")
    return out


def test_error_vector_keys() -> None:
    """bolt04/onion-error-test.json: ammag/um keys from each hop's shared secret."""
    for hop in _error_vector()["generate"]["hops"]:
        secret = bytes.fromhex(hop["hop_shared_secret"])
        assert generate_key(b"ammag", secret).hex() == hop["ammag_key"]
        if "um_key" in hop:
            assert generate_key(b"um", secret).hex() == hop["um_key"]


def test_error_vector_unwraps_to_the_fifth_hop() -> None:
    vec = _error_vector()
    secrets = [bytes.fromhex(h["hop_shared_secret"]) for h in vec["generate"]["hops"]]
    failure = unwrap_onion_error(secrets, bytes.fromhex(vec["errorpacket"]))
    assert failure == OnionFailure(
        onion_index=4, message=bytes.fromhex(vec["generate"]["failure_message"])
    )
    assert failure.failcode == 0x2002  # temporary_node_failure
    # one secret short: nobody's HMAC matches, the reply is "garbled"
    assert unwrap_onion_error(secrets[:4], bytes.fromhex(vec["errorpacket"])) is None
    # a flipped byte breaks the HMAC
    tampered = bytearray.fromhex(vec["errorpacket"])
    tampered[40] ^= 1
    assert unwrap_onion_error(secrets, bytes(tampered)) is None


def test_cln_replies_from_regtest() -> None:
    """Replies captured from lightningd (test_regtest_onion): the injectpaymentonion
    error carries our own layer, listsendpays' erroronion (= waitsendpay 202's
    onionreply) does not."""
    seen = load_json("bolt12_regtest.json")
    secrets = [bytes.fromhex(s) for s in seen["bolt11_failure_secrets"]]
    reply = bytes.fromhex(seen["injectpaymentonion_error"]["data"]["onionreply"])
    failure = unwrap_onion_error(secrets, reply)
    assert failure is not None
    assert (failure.onion_index, failure.failcode) == (2, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
    stored = bytes.fromhex(seen["listsendpays_injected_failed"]["erroronion"])
    assert unwrap_onion_error(secrets[1:], stored, first_index=1) == failure
    assert seen["waitsendpay_error_for_failed_injected_part"]["code"] == 202

    blinded = seen["blinded_failure"]
    secrets = [bytes.fromhex(s) for s in blinded["shared_secrets"]]
    failure = unwrap_onion_error(secrets, bytes.fromhex(blinded["onionreply"]))
    assert failure is not None
    assert (failure.onion_index, failure.failcode) == (2, INVALID_ONION_BLINDING)


# --------------------------------------------------------------------------- locate

ME = "02" + "aa" * 32
B = "02" + "bb" * 32
C = "03" + "cc" * 32
ROUTE = Route(
    hops=(
        Hop(id=B, channel="101x1x0", direction=0, amount_msat=51_001, delay=24),
        Hop(id=C, channel="102x2x1", direction=1, amount_msat=50_000, delay=18),
    )
)


@pytest.mark.parametrize(
    ("payer", "onion_index", "site"),
    [
        (ME, 0, (0, ME, "101x1x0", 0)),  # our own node could not add the HTLC
        (ME, 1, (1, B, "102x2x1", 1)),  # B could not forward over 102x2x1
        (ME, 2, (2, C, None, None)),  # the destination
        (None, 0, (1, B, "102x2x1", 1)),  # sendonion onion: index 0 is the first peer
        (None, 1, (2, C, None, None)),
    ],
)
def test_locate_on_a_clear_route(
    payer: str | None, onion_index: int, site: tuple[int, str, str | None, int | None]
) -> None:
    plan = build_onion(ROUTE, ClearFinal(), blockheight=10, payer=payer)
    found = OnionFailure(onion_index=onion_index, message=b"\x10\x07").locate(ROUTE, plan)
    assert (
        found.erring_index,
        found.erring_node,
        found.erring_channel,
        found.erring_direction,
    ) == site
    assert not found.in_blinded_path


def test_locate_inside_a_blinded_path() -> None:
    """invalid_onion_blinding from the introduction node (Bob) is charged to the edge;
    a reply from deeper in the path (BOLT 4 forbids it) is charged there too."""
    edge, route, plan = vector_plan()
    assert plan.introduction_index == 1
    for index in (1, 3):
        found = OnionFailure(onion_index=index, message=b"\xc0\x18").locate(route, plan)
        assert found.in_blinded_path and found.erring_index == 2
        assert (found.erring_node, found.erring_channel) == (edge.source, edge.scid)
    alice = OnionFailure(onion_index=0, message=b"\x10\x07").locate(route, plan)
    assert (alice.erring_index, alice.erring_channel, alice.in_blinded_path) == (1, "0x0x10", False)
    with pytest.raises(ValueError, match="beyond 5 hops"):
        OnionFailure(onion_index=5, message=b"").locate(route, plan)
    assert OnionFailure(onion_index=0, message=b"\x01").failcode == 0
