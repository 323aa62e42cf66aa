"""BOLT 11 codec: the spec's own vectors, a real CLN regtest invoice, round trips, errors."""

from __future__ import annotations

import hashlib

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barq.errors import InvalidInvoice, InvalidParams
from barq.invoice import _bech32
from barq.invoice.bolt11 import InvoiceFields, decode, decode_fields, encode, pubkey_of
from barq.model import RouteHintHop

# BOLT 11 "Examples": all signed with this key.
SPEC_PRIV = bytes.fromhex("e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734")
SPEC_PAYEE = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"
SPEC_HASH = "0001020304050607080900010203040506070809000102030405060708090102"
SPEC_TS = 1496314658

DONATION = (
    "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kg"
    "etjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq8rkx3yf5tcsyz3d73gafnh3cax9rn449d9p5uxz9ezhhypd0elx"
    "87sjle52x86fux2ypatgddc6k63n7erqz25le42c4u4ecky03ylcqca784w"
)
COFFEE = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4"
    "jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudu"
    "pq63nyw24cg27h2rspfj9srp"
)
NONSENSE = (
    "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrsw"
    "e78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cu"
    "sd45tftc9c5fh0nnqpnl2jfll544esqchsrny"
)
HASHED_DESC = (
    "lnbc20m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm"
    "4zwqd5d7xmw5fk98klysy043l2ahrqscc6gd6ql3jrc5yzme8v4ntcewwz5cnw92tz0pc8qcuufvq7khhr8wpald05e92"
    "xw006sq94mg8v2ndf4sefvf9sygkshp5zfem29trqq2yxxz7"
)
TESTNET_FALLBACK = (
    "lntb20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqs"
    "yqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfpp3x9et2e20v6pu37c5d9vax37wxq72un98kmzzhznpurw9sgl2v0nklu2g4"
    "d0keph5t7tj9tcqd8rexnd07ux4uv2cjvcqwaxgj7v4uwn5wmypjd5n69z2xm3xgksg28nwht7f6zspwp3f9t"
)
ROUTE_HINTS = (
    "lnbc20m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm"
    "4zwqd5d7xmw5fk98klysy043l2ahrqsfpp3qjmp7lwpagxun9pygexvgpjdc4jdj85fr9yq20q82gphp2nflc7jtzrcaz"
    "rra7wwgzxqc8u7754cdlpfrmccae92qgzqvzq2ps8pqqqqqqpqqqqq9qqqvpeuqafqxu92d8lr6fvg0r5gv0heeeqgcrq"
    "lnm6jhphu9y00rrhy4grqszsvpcgpy9qqqqqqgqqqqq7qqzqj9n4evl6mr5aj9f58zp6fyjzup6ywn3x6sk8akg5v4tgn"
    "2q8g4fhx05wf6juaxu9760yp46454gpg5mtzgerlzezqcqvjnhjh8z3g2qqdhhwkj"
)
PICO = (
    "lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68y"
    "etpd5s9xar0wfjn5gpc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgf"
    "skx6eqf9hzqnteypzxz7fzypfhg6trddjhygrcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcm"
    "tv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxxqyjw5qcqp2rzjq0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxm"
    "y8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9qn07ytgrxxzad9hc4xt3mawjjt8znfv8xzscs7007v9gh9j569len"
    "cxa8xeujzkxs0uamak9aln6ez02uunw6rd2ht2sqe4hz8thcdagpleym0j"
)
COFFEE_BEANS = (
    "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdees"
    "sp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqpqsq67gye39hfg3zd8"
    "rgc80k32tvy9xk2xunwm5lzexnvpx6fd77en8qaq424dxgt56cag2dpt359k3ssyhetktkpqh24jqnjyw6uqd08sgptq4"
    "4qu"
)
# A real Core Lightning regtest invoice: `invoice 10000 label "description" expiry=3600 cltv=8`.
CLN_REGTEST = (
    "lnbcrt100n1pjukvvfsp5nedu4x4vfz5e4wzsncwdvxl40pagx4fqar6kwyz6uqeyjm0szuwqpp5exhle30pr9z36d6mz0"
    "kjrxtmdvumvtzts0dqv4jnktpplzhkv3fsdqjv3jhxcmjd9c8g6t0dccqpgfp4pc5jhwpvx34krcpzlzs5mv647uvy5y66"
    "ful2erkyte5q744ayagaq9qx3qysgq7le7cmzj6n22ujpyy9psdk0qa072fhjtqxm6psdj7y23wx5nydk8pkjft09ms2z"
    "0pqhh9g9xfqrjyrnxdamahpzcrxq3z4jl9zpgkhqq6tsyr8"
)

SEED_PRIV = hashlib.sha256(b"barq-test-payee").digest()


def test_spec_donation_example() -> None:
    inv = decode(DONATION)
    assert inv.network == "bitcoin"
    assert inv.amount_msat is None
    assert inv.payee == SPEC_PAYEE
    assert inv.payment_hash == SPEC_HASH
    assert inv.created_at == SPEC_TS
    assert inv.description == "Please consider supporting this project"
    assert inv.expiry == 3600 and inv.min_final_cltv_expiry == 18
    assert inv.payment_secret is None and inv.route_hints == () and inv.features == ""


def test_spec_examples_amounts_expiry_utf8() -> None:
    coffee = decode(COFFEE)
    assert coffee.amount_msat == 250_000_000  # 2500u
    assert coffee.expiry == 60
    assert coffee.description == "1 cup coffee"
    assert decode(NONSENSE).description == "ナンセンス 1杯"
    assert decode(PICO).amount_msat == 967_878_534
    assert decode(PICO).expiry == 604800 and decode(PICO).min_final_cltv_expiry == 10


def test_spec_hashed_description_and_testnet() -> None:
    fields, payee, _ = decode_fields(HASHED_DESC)
    assert payee == SPEC_PAYEE
    assert fields.description is None
    cake = (
        b"One piece of chocolate cake, one icecream cone, one pickle, one slice of swiss "
        b"cheese, one slice of salami, one lollypop, one piece of cherry pie, one sausage, "
        b"one cupcake, and one slice of watermelon"
    )
    assert fields.description_hash == hashlib.sha256(cake).hexdigest()
    t = decode(TESTNET_FALLBACK)  # has an 'f' field, which is skipped
    assert t.network == "testnet" and t.amount_msat == 2_000_000_000 and t.payee == SPEC_PAYEE


def test_spec_route_hints() -> None:
    inv = decode(ROUTE_HINTS)
    assert inv.route_hints == (
        (
            RouteHintHop(
                node_id="029e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255",
                scid="66051x263430x1800",
                fee_base_msat=1,
                fee_ppm=20,
                cltv_delta=3,
            ),
            RouteHintHop(
                node_id="039e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255",
                scid="197637x395016x2314",
                fee_base_msat=2,
                fee_ppm=30,
                cltv_delta=4,
            ),
        ),
    )
    assert decode(PICO).route_hints[0][0].scid == "589390x3312x1"
    assert decode(PICO).route_hints[0][0].fee_base_msat == 1000


def test_spec_features_and_secret_and_uppercase() -> None:
    inv = decode(COFFEE_BEANS)
    assert inv.payment_secret == "11" * 32
    # features 9, 15 and 99
    assert int(inv.features, 16) == (1 << 9) | (1 << 15) | (1 << 99)
    assert decode(COFFEE_BEANS.upper()) == inv
    assert decode("lightning:" + COFFEE_BEANS).payment_hash == inv.payment_hash


@pytest.mark.parametrize("vector", [DONATION, COFFEE, NONSENSE, HASHED_DESC, COFFEE_BEANS])
def test_encoding_reproduces_spec_vectors(vector: str) -> None:
    fields, _, _ = decode_fields(vector)
    assert encode(fields, SPEC_PRIV) == vector


def test_real_cln_regtest_invoice() -> None:
    inv = decode(CLN_REGTEST)
    assert inv.network == "regtest"
    assert inv.amount_msat == 10_000  # 100n
    assert inv.description == "description"
    assert inv.min_final_cltv_expiry == 8
    assert inv.expiry == 3600
    assert inv.payment_hash == "c9affcc5e119451d375b13ed21997b6b39b62c4b83da065653b2c21f8af66453"
    assert inv.payment_secret is not None and len(inv.payment_secret) == 64
    assert inv.payee.startswith(("02", "03")) and len(inv.payee) == 66
    # var_onion_optin (8) and payment_secret (14) compulsory, basic_mpp (17) optional
    bits = int(inv.features, 16)
    assert bits & (1 << 8) and bits & (1 << 14) and bits & (1 << 17)


INVALID = {
    "bad checksum": (
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9w"
        "lrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvya"
        "kky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt",
        "checksum",
    ),
    "no separator": (
        "pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4e"
        "yqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd"
        "45tftc9c5fh0nnqpnl2jfll544esqchsrny",
        "bech32",
    ),
    "mixed case": (
        "LNBC2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9w"
        "lrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvya"
        "kky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
        "mixed case",
    ),
    "unrecoverable signature": (
        "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7e"
        "nxv4jsxqzpuaxtrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw9"
        "7j25emudupq63nyw24cg27h2rspk28uwq",
        "signature",
    ),
    "too short": (
        "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5"
        "kgetjypeh2ursdae8g6na6hlh",
        "too short",
    ),
    "invalid multiplier": (
        "lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7e"
        "nxv4jsxqzpujr6jxr9gq9pv6g46y7d20jfkegkg4gljz2ea2a3m9lmvvr95tq2s0kvu70u3axgelz3kyvtp2ywwt"
        "0y8hkx2869zq5dll9nelr83zzqqpgl2zg",
        "bad amount",
    ),
    "sub-millisatoshi": (
        "lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxats"
        "yp3k7enxv4jsxqzpu7hqtk93pkf7sw55rdv4k9z2vj050rxdr6za9ekfs3nlt5lr89jqpdmxsmlj9urqumg0h9w"
        "zpqecw7th56tdms40p2ny9q4ddvjsedzcplva53s",
        "sub-millisatoshi",
    ),
    "unknown even feature 100": (
        "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetp"
        "deessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q4psqqqqqqqqqqqqqqqpqsqq40wa"
        "3khl49yue3zsgm26jrepqr2eghqlx86rttutve3ugd05em86nsefzh4pfurpd9ek9w2vp95zxqnfe2u7ckudyah"
        "sa52q66tgzcp6t2dyk",
        "feature bit 100",
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_spec_invalid_invoices(name: str) -> None:
    text, needle = INVALID[name]
    with pytest.raises(InvalidInvoice, match=needle):
        decode(text)


def _fields(**kw: object) -> InvoiceFields:
    base: dict[str, object] = dict(
        network="regtest",
        payment_hash="ab" * 32,
        created_at=1_700_000_000,
        amount_msat=123_456_789,
        payment_secret="cd" * 32,
        description="test",
        expiry=600,
        min_final_cltv_expiry=40,
        features="024100",
    )
    base.update(kw)
    return InvoiceFields(**base)  # type: ignore[arg-type]


def test_not_lightning_and_unknown_currency() -> None:
    with pytest.raises(InvalidInvoice, match="does not start with 'ln'"):
        decode(_bech32.bech32_encode("bc", [0] * 120))
    with pytest.raises(InvalidInvoice, match="unknown currency prefix 'lnxy'"):
        decode(_bech32.bech32_encode("lnxy100n", [0] * 120))
    with pytest.raises(InvalidInvoice, match="bad amount"):
        decode(_bech32.bech32_encode("lnbc0m", [0] * 120))
    with pytest.raises(InvalidInvoice, match="bad bech32"):
        decode("lnbc1qqqqqq\x00")


def test_missing_payment_hash() -> None:
    # A validly signed invoice whose only 'p' field has the wrong length (skipped).
    good = encode(_fields(), SEED_PRIV)
    hrp, words = _bech32.bech32_decode(good)
    body = words[:-104]
    # Replace the 52-word 'p' field (right after the timestamp) by a 51-word one.
    assert body[7] == 1 and (body[8] << 5 | body[9]) == 52
    body = [*body[:7], 1, 1, 19, *body[10 : 10 + 51], *body[10 + 52 :]]
    msg = hrp.encode() + _bech32.words_to_bytes(body, pad=True)
    sig = coincurve.PrivateKey(SEED_PRIV).sign_recoverable(msg)
    bad = _bech32.bech32_encode(hrp, body + _bech32.bytes_to_words(sig))
    with pytest.raises(InvalidInvoice, match="missing payment hash"):
        decode(bad)


def _signed(hrp: str, fields: list[tuple[str, list[int]]]) -> str:
    """A bolt11 string with exactly these tagged fields, in this order, signed by SEED_PRIV."""
    body = _bech32.int_to_words(1_700_000_000, 7)
    for tag, ws in fields:
        body += [_bech32.CHARSET.index(tag), len(ws) >> 5, len(ws) & 31, *ws]
    msg = hrp.encode() + _bech32.words_to_bytes(body, pad=True)
    sig = coincurve.PrivateKey(SEED_PRIV).sign_recoverable(msg)
    return _bech32.bech32_encode(hrp, body + _bech32.bytes_to_words(sig))


def test_first_field_of_each_kind_counts_and_others_are_skipped() -> None:
    words = _bech32.bytes_to_words
    text = _signed(
        "lnbcrt",
        [
            ("p", words(b"\xff" * 31)),  # 50 words: the wrong length, skipped
            ("p", words(bytes.fromhex("01" * 32))),
            ("p", words(bytes.fromhex("02" * 32))),  # a second p: skipped
            ("f", [0] * 33),  # a fallback address: skipped
            ("x", _bech32.int_to_words(60)),
            ("x", _bech32.int_to_words(99)),
            ("d", words(b"first")),
            ("d", words(b"\xff")),  # a second d is skipped before it is even decoded
            ("9", [0]),  # no bit set: a later 9 field still counts
            ("9", _bech32.int_to_words(1 << 14)),
            ("c", _bech32.int_to_words(40)),
            ("s", words(bytes.fromhex("03" * 32))),
        ],
    )
    f, payee, _ = decode_fields(text)
    assert (f.payment_hash, f.payment_secret) == ("01" * 32, "03" * 32)
    assert (f.expiry, f.min_final_cltv_expiry, f.description) == (60, 40, "first")
    assert f.features == "4000" and f.payee is None and payee == pubkey_of(SEED_PRIV)
    with pytest.raises(InvalidInvoice, match="not valid UTF-8"):
        decode_fields(_signed("lnbcrt", [("p", words(bytes(32))), ("d", words(b"\xff"))]))
    with pytest.raises(InvalidInvoice, match="unknown required feature bit 20"):
        decode_fields(_signed("lnbcrt", [("p", words(bytes(32))), ("9", [1, 0, 0, 0, 0])]))


def test_tampered_payee_field_is_a_bad_signature() -> None:
    other = hashlib.sha256(b"someone else").digest()
    text = encode(_fields(payee=pubkey_of(other)), SEED_PRIV, signer_is_payee=False)
    with pytest.raises(InvalidInvoice, match="bad signature"):
        decode(text)
    # ...unless the signer is trusted (the simulator's case).
    inv = decode(text, trusted_signers={pubkey_of(SEED_PRIV)})
    assert inv.payee == pubkey_of(other)


def test_signature_covers_the_data() -> None:
    text = encode(_fields(), SEED_PRIV)
    # Flip a payment-hash word and fix up the checksum: the recovered payee changes.
    hrp, words = _bech32.bech32_decode(text)
    words[20] ^= 1
    forged = _bech32.bech32_encode(hrp, words)
    assert decode(forged).payee != pubkey_of(SEED_PRIV)
    # With an explicit 'n' field the same forgery is refused outright.
    text_n = encode(_fields(payee=pubkey_of(SEED_PRIV)), SEED_PRIV)
    hrp, words = _bech32.bech32_decode(text_n)
    words[20] ^= 1
    with pytest.raises(InvalidInvoice, match="bad signature"):
        decode(_bech32.bech32_encode(hrp, words))


def test_round_trip_all_fields() -> None:
    hints = (
        (
            RouteHintHop(
                node_id=pubkey_of(hashlib.sha256(b"h1").digest()),
                scid="700000x12x1",
                fee_base_msat=1000,
                fee_ppm=250,
                cltv_delta=144,
            ),
            RouteHintHop(
                node_id=pubkey_of(hashlib.sha256(b"h2").digest()),
                scid="1x2x3",
                fee_base_msat=0,
                fee_ppm=1,
                cltv_delta=18,
            ),
        ),
        (
            RouteHintHop(
                node_id=pubkey_of(hashlib.sha256(b"h3").digest()),
                scid="5x5x5",
                fee_base_msat=7,
                fee_ppm=8,
                cltv_delta=9,
            ),
        ),
    )
    f = _fields(route_hints=hints, payee=pubkey_of(SEED_PRIV))
    text = encode(f, SEED_PRIV)
    assert text.startswith("lnbcrt1234567890p1")  # 123456789 msat needs pico
    f2, payee, norm = decode_fields(text)
    assert f2 == f and payee == pubkey_of(SEED_PRIV) and norm == text
    inv = decode(text)
    assert inv.route_hints == hints
    assert inv.min_final_cltv_expiry == 40 and inv.expiry == 600
    assert inv.payment_secret == "cd" * 32 and inv.features == "024100"
    assert encode(InvoiceFields.from_invoice(inv, include_payee=True), SEED_PRIV) == text


@pytest.mark.parametrize(
    ("network", "prefix"),
    [("bitcoin", "lnbc"), ("testnet", "lntb"), ("signet", "lntbs"), ("regtest", "lnbcrt")],
)
@pytest.mark.parametrize(
    ("amount", "hrp_amount"),
    [
        (None, ""),
        (100_000_000_000, "1"),
        (2_000_000_000, "20m"),
        (250_000_000, "2500u"),
        (10_000, "100n"),
        (1, "10p"),
        (1_001, "10010p"),
    ],
)
def test_networks_and_amount_multipliers(
    network: str, prefix: str, amount: int | None, hrp_amount: str
) -> None:
    text = encode(_fields(network=network, amount_msat=amount), SEED_PRIV)
    assert text.startswith(prefix + hrp_amount + "1")
    inv = decode(text)
    assert inv.network == network and inv.amount_msat == amount


def test_defaults_when_x_and_c_absent() -> None:
    inv = decode(encode(_fields(expiry=None, min_final_cltv_expiry=None), SEED_PRIV))
    assert inv.expiry == 3600 and inv.min_final_cltv_expiry == 18


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(InvalidParams, match="unknown network"):
        encode(_fields(network="litecoin"), SEED_PRIV)
    with pytest.raises(InvalidParams, match="payment_hash"):
        encode(_fields(payment_hash="zz"), SEED_PRIV)
    with pytest.raises(InvalidParams, match="not the signing key"):
        encode(_fields(payee=SPEC_PAYEE), SEED_PRIV)
    with pytest.raises(InvalidParams, match="amount must be positive"):
        encode(_fields(amount_msat=0), SEED_PRIV)


@settings(max_examples=40, deadline=None)
@given(
    amount=st.one_of(st.none(), st.integers(min_value=1, max_value=21_000_000 * 10**11)),
    desc=st.text(max_size=100),
    expiry=st.integers(min_value=0, max_value=2**40),
    cltv=st.integers(min_value=0, max_value=5000),
    ts=st.integers(min_value=0, max_value=2**35 - 1),
    hash_=st.binary(min_size=32, max_size=32),
)
def test_round_trip_property(
    amount: int | None, desc: str, expiry: int, cltv: int, ts: int, hash_: bytes
) -> None:
    f = _fields(
        amount_msat=amount,
        description=desc,
        expiry=expiry,
        min_final_cltv_expiry=cltv,
        created_at=ts,
        payment_hash=hash_.hex(),
    )
    f2, payee, _ = decode_fields(encode(f, SEED_PRIV))
    assert f2 == f
    assert payee == pubkey_of(SEED_PRIV)
