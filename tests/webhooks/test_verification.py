from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.providers.airtel_money.callback_hash import verify_airtel_hash
from app.providers.mtn_momo.signature import verify_hex_signature
from app.vocabulary import CallbackRejection
from app.webhooks.verification import IPNetwork, client_ip, ip_allowed, parse_ip


def networks(*cidrs: str) -> list[IPNetwork]:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


PROXIES = networks("10.0.0.0/8", "2001:db8:ffff::/48")
PROVIDER = "196.201.214.10"  # stands in for a provider's callback host
ATTACKER = "203.0.113.9"


# --- client_ip ----------------------------------------------------------------------------------


def test_direct_peer_is_the_client_without_proxies() -> None:
    assert client_ip(PROVIDER, None, []) == ip(PROVIDER)


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted() -> None:
    assert client_ip(ATTACKER, PROVIDER, []) == ip(ATTACKER)


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip(ATTACKER, PROVIDER, PROXIES) == ip(ATTACKER)


def test_trusted_chain_gives_the_first_untrusted_hop_from_the_right() -> None:
    # The attacker wrote the provider's address itself; our proxies appended the real hops.
    forwarded = f"{PROVIDER}, {ATTACKER}, 10.0.0.5"
    assert client_ip("10.0.0.2", forwarded, PROXIES) == ip(ATTACKER)


def test_trusted_chain_gives_the_provider_when_it_is_the_real_client() -> None:
    assert client_ip("10.0.0.2", f"{PROVIDER}, 10.0.0.5", PROXIES) == ip(PROVIDER)


def test_all_trusted_chain_gives_the_left_most_hop() -> None:
    assert client_ip("10.0.0.2", "10.1.1.1, 10.0.0.5", PROXIES) == ip("10.1.1.1")


def test_trusted_peer_without_forwarded_for_is_the_client() -> None:
    assert client_ip("10.0.0.2", None, PROXIES) == ip("10.0.0.2")
    assert client_ip("10.0.0.2", " ", PROXIES) == ip("10.0.0.2")


def test_ipv6_chain() -> None:
    forwarded = "2001:db8:1::7, [2001:db8:ffff::2]:443"
    assert client_ip("2001:db8:ffff::1", forwarded, PROXIES) == ip("2001:db8:1::7")


def test_ipv4_mapped_addresses_are_normalised() -> None:
    result = client_ip("::ffff:10.0.0.2", f"::ffff:{PROVIDER}", PROXIES)
    assert result == ipaddress.IPv4Address(PROVIDER)


def test_trusted_proxy_listed_as_a_mapped_ipv6_range() -> None:
    assert client_ip("10.0.0.2", PROVIDER, networks("::ffff:10.0.0.0/104")) == ip(PROVIDER)


def test_entries_with_ports() -> None:
    assert client_ip("10.0.0.2:51000", f"{PROVIDER}:5678, 10.0.0.5:80", PROXIES) == ip(PROVIDER)


def test_malformed_hop_after_trusted_proxies_gives_no_address() -> None:
    result = client_ip("10.0.0.2", f"{PROVIDER}, unknown, 10.0.0.5", PROXIES)
    assert result is None
    assert not ip_allowed(result, networks(f"{PROVIDER}/32", "10.0.0.0/8"))


def test_garbage_left_of_the_first_untrusted_hop_is_never_read() -> None:
    assert client_ip("10.0.0.2", f"garbage, {ATTACKER}", PROXIES) == ip(ATTACKER)


def test_empty_list_elements_are_skipped() -> None:
    assert client_ip("10.0.0.2", f"{PROVIDER}, , 10.0.0.5,", PROXIES) == ip(PROVIDER)


def test_unparsable_peer_gives_no_address_and_forwarded_for_is_not_believed() -> None:
    assert client_ip("testclient", PROVIDER, PROXIES) is None
    assert client_ip(None, PROVIDER, PROXIES) is None
    assert client_ip("", PROVIDER, []) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("[::ffff:1.2.3.4]:80", "1.2.3.4"),
    ],
)
def test_parse_ip_accepts(text: str, expected: str) -> None:
    assert parse_ip(text) == ip(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unknown",
        "testclient",
        "example.com",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:http",
        "1.2.3.4:123456",
        "[2001:db8::1",
        "[2001:db8::1]443",
        "2001:db8::1:443:x",
        "\u0661.\u0662.\u0663.\u0664",  # Arabic-Indic digits
    ],
)
def test_parse_ip_refuses(text: str) -> None:
    assert parse_ip(text) is None


cidrs = st.one_of(
    st.ip_addresses(v=4).map(lambda a: ipaddress.ip_network(f"{a}/8", strict=False)),
    st.ip_addresses(v=6).map(lambda a: ipaddress.ip_network(f"{a}/32", strict=False)),
)
hop_text = st.one_of(
    st.text(), st.ip_addresses().map(str), st.sampled_from(["10.0.0.1", "[::1]:80"])
)


@given(
    peer=st.one_of(st.none(), st.text(), st.ip_addresses().map(str)),
    forwarded=st.one_of(st.none(), st.text(), st.lists(hop_text).map(", ".join)),
    trusted=st.lists(cidrs, max_size=4),
)
def test_client_ip_never_raises(
    peer: str | None, forwarded: str | None, trusted: list[IPNetwork]
) -> None:
    result = client_ip(peer, forwarded, trusted)
    assert result is None or isinstance(result, ipaddress.IPv4Address | ipaddress.IPv6Address)


@given(
    peer=st.ip_addresses(),
    forwarded=st.one_of(st.none(), st.text(), st.lists(hop_text).map(", ".join)),
)
def test_forwarded_for_never_changes_the_answer_for_an_untrusted_peer(
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address, forwarded: str | None
) -> None:
    trusted = networks("192.0.2.0/24")
    if any(peer in net for net in trusted if peer.version == net.version):
        return
    assert client_ip(str(peer), forwarded, trusted) == parse_ip(str(peer))


# --- ip_allowed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allowlist", "allowed"),
    [
        ("196.201.214.10", ["196.201.214.10"], True),
        ("196.201.214.11", ["196.201.214.10"], False),
        ("41.210.130.1", ["41.210.128.0/17"], True),
        ("41.210.0.1", ["41.210.128.0/17"], False),
        ("2c0f:fe38:1::5", ["2c0f:fe38::/32"], True),
        ("2c0f:fe39::5", ["2c0f:fe38::/32"], False),
        ("2c0f:fe38::1", ["2c0f:fe38::1"], True),
        ("41.210.130.1", ["2c0f:fe38::/32"], False),
        ("2c0f:fe38::1", ["41.210.128.0/17"], False),
        ("41.210.130.1", ["2c0f:fe38::/32", "41.210.128.0/17"], True),
    ],
)
def test_ip_allowed(address: str, allowlist: list[str], allowed: bool) -> None:
    assert ip_allowed(ip(address), networks(*allowlist)) is allowed


def test_mapped_address_matches_an_ipv4_allowlist() -> None:
    assert ip_allowed(parse_ip("::ffff:41.210.130.1"), networks("41.210.128.0/17"))


def test_empty_allowlist_allows_everyone_even_an_unknown_address() -> None:
    assert ip_allowed(ip(ATTACKER), [])
    assert ip_allowed(None, [])


def test_unknown_address_is_denied_by_an_allowlist() -> None:
    assert not ip_allowed(None, networks("0.0.0.0/0", "::/0"))


def test_rejection_status_codes() -> None:
    assert CallbackRejection.IP_DENIED.status_code == 403
    assert CallbackRejection.MISSING_SIGNATURE.status_code == 401
    assert CallbackRejection.BAD_SIGNATURE.status_code == 401
    assert CallbackRejection.TOKEN_INVALID.status_code == 401
    assert str(CallbackRejection.BAD_SIGNATURE) == "bad_signature"


# --- X-Signature --------------------------------------------------------------------------------

SECRET = b"mtn-webhook-secret"
BODY = b'{"externalId":"ORD-1001","amount":"50000","currency":"UGX","status":"SUCCESSFUL"}'


def hex_signature(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "header",
    [
        hex_signature(BODY),
        hex_signature(BODY).upper(),
        "sha256=" + hex_signature(BODY),
        "SHA256=" + hex_signature(BODY),
        f" {hex_signature(BODY)} ",
    ],
)
def test_hex_signature_valid(header: str) -> None:
    assert verify_hex_signature(BODY, header, SECRET)


def test_hex_signature_wrong() -> None:
    assert not verify_hex_signature(BODY, "0" * 64, SECRET)
    assert not verify_hex_signature(BODY, hex_signature(BODY)[:-1], SECRET)
    assert not verify_hex_signature(BODY, hex_signature(BODY) + "0", SECRET)
    assert not verify_hex_signature(BODY, "é" * 64, SECRET)


def test_hex_signature_missing() -> None:
    assert not verify_hex_signature(BODY, None, SECRET)
    assert not verify_hex_signature(BODY, "", SECRET)


def test_hex_signature_wrong_secret() -> None:
    assert not verify_hex_signature(BODY, hex_signature(BODY, b"another-secret"), SECRET)


def test_hex_signature_tampered_body() -> None:
    tampered = BODY.replace(b"50000", b"5")
    assert not verify_hex_signature(tampered, hex_signature(BODY), SECRET)


def test_hex_signature_under_an_empty_secret_proves_nothing() -> None:
    assert not verify_hex_signature(BODY, hex_signature(BODY, b""), b"")


@given(body=st.binary(), header=st.one_of(st.none(), st.text()), secret=st.binary())
def test_hex_signature_never_raises(body: bytes, header: str | None, secret: bytes) -> None:
    assert verify_hex_signature(body, header, secret) in {True, False}


@given(body=st.binary(), secret=st.binary(min_size=1))
def test_hex_signature_round_trip(body: bytes, secret: bytes) -> None:
    assert verify_hex_signature(body, hex_signature(body, secret), secret)


# --- Airtel hash --------------------------------------------------------------------------------

AIRTEL_SECRET = b"airtel-private-key-from-the-portal"
# The transaction member of Airtel's documented callback, as the docs print it.
SAMPLE_TRANSACTION = (
    '{"id":"BBZMiscxy","message":"Paid UGX 5,000 to TECHNOLOGIES LIMITED Charge UGX 140, '
    'Trans ID MP210603.1234.L06941.","status_code":"TS","airtel_money_id":"MP210603.1234.L06941"}'
)
VARIANTS = {
    "raw_transaction",
    "compact_transaction",
    "compact_ascii_transaction",
    "sorted_transaction",
    "sorted_ascii_transaction",
}


def airtel_hash(message: str | bytes, secret: bytes = AIRTEL_SECRET) -> str:
    data = message.encode() if isinstance(message, str) else message
    return base64.b64encode(hmac.new(secret, data, hashlib.sha256).digest()).decode()


def airtel_body(raw_transaction: str, hash_value: Any) -> bytes:
    return (
        '{"transaction":' + raw_transaction + ',"hash":' + json.dumps(hash_value) + "}"
    ).encode()


def test_docs_sample_body_verifies_over_the_raw_transaction() -> None:
    body = airtel_body(SAMPLE_TRANSACTION, airtel_hash(SAMPLE_TRANSACTION))
    assert body.startswith(b'{"transaction":{"id":"BBZMiscxy","message":"Paid UGX 5,000')
    assert verify_airtel_hash(body, AIRTEL_SECRET) == "raw_transaction"


def test_whitespace_formatted_body_matches_only_over_the_raw_bytes() -> None:
    raw = json.dumps(json.loads(SAMPLE_TRANSACTION), indent=2)
    body = airtel_body(raw, airtel_hash(raw))
    assert verify_airtel_hash(body, AIRTEL_SECRET) == "raw_transaction"
    # The same hash on the same transaction written compactly does not match: the bytes count.
    assert (
        verify_airtel_hash(airtel_body(SAMPLE_TRANSACTION, airtel_hash(raw)), AIRTEL_SECRET) is None
    )


def test_raw_escapes_are_hashed_as_received_not_re_serialised() -> None:
    raw = '{"id":"BBZMiscxy","message":"Paid UGX 5,000 \\u002F ref \\/ ok","status_code":"TS"}'
    assert (
        verify_airtel_hash(airtel_body(raw, airtel_hash(raw)), AIRTEL_SECRET) == "raw_transaction"
    )


def test_compact_re_encoding_matches_when_the_raw_bytes_differ() -> None:
    transaction = json.loads(SAMPLE_TRANSACTION)
    raw = json.dumps(transaction, indent=4)
    compact = json.dumps(transaction, separators=(",", ":"))
    result = verify_airtel_hash(airtel_body(raw, airtel_hash(compact)), AIRTEL_SECRET)
    assert result == "compact_transaction"


def test_compact_ascii_re_encoding() -> None:
    raw = '{"id": "BBZ1", "message": "Paid UGX 5,000 to Café Kampala", "status_code": "TS"}'
    escaped = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=True)
    assert "\\u00e9" in escaped
    result = verify_airtel_hash(airtel_body(raw, airtel_hash(escaped)), AIRTEL_SECRET)
    assert result == "compact_ascii_transaction"


def test_compact_re_encoding_keeps_non_ascii_as_utf8() -> None:
    raw = '{"id": "BBZ1", "message": "Paid UGX 5,000 to Café Kampala", "status_code": "TS"}'
    kept = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False)
    result = verify_airtel_hash(airtel_body(raw, airtel_hash(kept)), AIRTEL_SECRET)
    assert result == "compact_transaction"


def test_sorted_re_encoding() -> None:
    transaction = json.loads(SAMPLE_TRANSACTION)
    ordered = json.dumps(transaction, separators=(",", ":"), sort_keys=True)
    assert ordered != SAMPLE_TRANSACTION
    result = verify_airtel_hash(
        airtel_body(SAMPLE_TRANSACTION, airtel_hash(ordered)), AIRTEL_SECRET
    )
    assert result == "sorted_transaction"


def test_sorted_ascii_re_encoding() -> None:
    raw = '{"status_code":"TS","message":"Café","id":"BBZ1"}'
    ordered = json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True, ensure_ascii=True)
    result = verify_airtel_hash(airtel_body(raw, airtel_hash(ordered)), AIRTEL_SECRET)
    assert result == "sorted_ascii_transaction"


def test_hash_before_transaction_and_escaped_key() -> None:
    body = (
        '{ "hash" : "' + airtel_hash(SAMPLE_TRANSACTION) + '" ,\n'
        '  "transacti\\u006fn" :\t' + SAMPLE_TRANSACTION + "\n}"
    ).encode()
    assert verify_airtel_hash(body, AIRTEL_SECRET) == "raw_transaction"


def test_nested_transaction_key_is_not_the_top_level_one() -> None:
    decoy = '{"id":"decoy","status_code":"TS"}'
    prefix = '{"meta":{"transaction":' + decoy + ',"note":"\\"transaction\\":{}"},"transaction":'
    signed_decoy = (prefix + SAMPLE_TRANSACTION + ',"hash":"' + airtel_hash(decoy) + '"}').encode()
    assert verify_airtel_hash(signed_decoy, AIRTEL_SECRET) is None
    signed_real = prefix + SAMPLE_TRANSACTION + ',"hash":"' + airtel_hash(SAMPLE_TRANSACTION) + '"}'
    assert verify_airtel_hash(signed_real.encode(), AIRTEL_SECRET) == "raw_transaction"


def test_repeated_transaction_member_is_refused() -> None:
    # A genuine transaction and its hash, followed by a second transaction that json.loads would
    # keep instead: accepting this would let anyone replay a hash over different content.
    forged = '{"id":"BBZMiscxy","status_code":"TS","airtel_money_id":"FORGED"}'
    body = (
        '{"transaction":'
        + SAMPLE_TRANSACTION
        + ',"transaction":'
        + forged
        + ',"hash":"'
        + airtel_hash(SAMPLE_TRANSACTION)
        + '"}'
    ).encode()
    assert verify_airtel_hash(body, AIRTEL_SECRET) is None


def test_wrong_secret() -> None:
    body = airtel_body(SAMPLE_TRANSACTION, airtel_hash(SAMPLE_TRANSACTION, b"someone-else"))
    assert verify_airtel_hash(body, AIRTEL_SECRET) is None


def test_tampered_transaction() -> None:
    tampered = SAMPLE_TRANSACTION.replace('"TS"', '"TF"')
    body = airtel_body(tampered, airtel_hash(SAMPLE_TRANSACTION))
    assert verify_airtel_hash(body, AIRTEL_SECRET) is None


def test_missing_hash() -> None:
    assert (
        verify_airtel_hash(('{"transaction":' + SAMPLE_TRANSACTION + "}").encode(), AIRTEL_SECRET)
        is None
    )


@pytest.mark.parametrize(
    "hash_value",
    [
        None,
        12345,
        ["x"],
        {"v": "x"},
        "",
        "not base64!!",
        base64.b64encode(b"too short").decode(),
        airtel_hash(SAMPLE_TRANSACTION).rstrip("="),
        "zITVAAGYSlzl1WkUQJn81kbpT5drH3koffT8jCkcJJA=é",
    ],
)
def test_hash_that_is_not_a_base64_digest(hash_value: Any) -> None:
    assert verify_airtel_hash(airtel_body(SAMPLE_TRANSACTION, hash_value), AIRTEL_SECRET) is None


def test_right_hash_under_an_empty_secret_proves_nothing() -> None:
    body = airtel_body(SAMPLE_TRANSACTION, airtel_hash(SAMPLE_TRANSACTION, b""))
    assert verify_airtel_hash(body, b"") is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"transaction"',
        b"null",
        b'{"hash":"zITVAAGYSlzl1WkUQJn81kbpT5drH3koffT8jCkcJJA="}',
        b'{"transaction":{"id":"\xff\xfe"},"hash":"zITVAAGYSlzl1WkUQJn81kbpT5drH3koffT8jCkcJJA="}',
        b"\xef\xbb\xbf{}",
        b'{"transaction":' + b"[" * 100_000 + b"]" * 100_000 + b',"hash":""}',
        b'{"transaction":1' + b"0" * 10_000 + b',"hash":""}',
        b'{"transaction":"' + b"x" * 1_000_000 + b'","hash":""}',
        b'{"transaction":{}} trailing',
    ],
)
def test_hostile_bodies_are_refused(body: bytes) -> None:
    assert verify_airtel_hash(body, AIRTEL_SECRET) is None


def test_lone_surrogate_escape_does_not_break_verification() -> None:
    raw = '{"id":"BBZ1","message":"\\ud800"}'
    assert (
        verify_airtel_hash(airtel_body(raw, airtel_hash(raw)), AIRTEL_SECRET) == "raw_transaction"
    )
    assert verify_airtel_hash(airtel_body(raw, airtel_hash("other")), AIRTEL_SECRET) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(body=st.binary(), secret=st.binary())
def test_airtel_hash_never_raises_on_bytes(body: bytes, secret: bytes) -> None:
    assert verify_airtel_hash(body, secret) is None


@settings(deadline=None)
@given(transaction=json_values, hash_value=json_values, extra=st.text())
def test_airtel_hash_never_raises_on_json_shaped_bodies(
    transaction: Any, hash_value: Any, extra: str
) -> None:
    body = json.dumps({"transaction": transaction, "hash": hash_value}).encode()
    assert verify_airtel_hash(body, AIRTEL_SECRET) is None
    assert verify_airtel_hash(body[:-1] + extra.encode(), AIRTEL_SECRET) is None


@settings(deadline=None)
@given(
    transaction=json_values,
    decoy=json_values,
    indent=st.sampled_from([None, 0, 2, "\t"]),
    ensure_ascii=st.booleans(),
)
def test_raw_transaction_is_found_in_any_formatting(
    transaction: Any, decoy: Any, indent: int | str | None, ensure_ascii: bool
) -> None:
    raw = json.dumps(transaction, indent=indent, ensure_ascii=ensure_ascii)
    body = (
        '{"other" : '
        + json.dumps({"transaction": decoy}, ensure_ascii=ensure_ascii)
        + ' ,\n "transaction"\t: '
        + raw
        + " , "
        + '"hash":"'
        + airtel_hash(raw)
        + '" }'
    ).encode()
    assert verify_airtel_hash(body, AIRTEL_SECRET) == "raw_transaction"


@settings(deadline=None)
@given(transaction=json_values, sort_keys=st.booleans(), ensure_ascii=st.booleans())
def test_every_re_encoding_of_any_transaction_is_accepted(
    transaction: Any, sort_keys: bool, ensure_ascii: bool
) -> None:
    encoded = json.dumps(
        transaction, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii
    )
    raw = json.dumps(transaction, indent=1)
    result = verify_airtel_hash(airtel_body(raw, airtel_hash(encoded)), AIRTEL_SECRET)
    assert result in VARIANTS
