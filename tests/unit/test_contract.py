"""The decoder enforces exactly the JSON Schema contract, with a clear reason for each rejection."""

import json

import jsonschema
import pytest

from streams.contract import MAX_EVENT_BYTES, SCHEMA_PATH, InvalidEvent, decode_event

GOOD = {"event_id": "e1", "type": "login", "account_id": "a1", "ts": "2026-01-05T00:00:00Z",
        "device_id": "d1", "ip": "10.0.0.1", "payment_id": None}

VALID = [
    GOOD,
    {**GOOD, "ts": "2026-01-05T01:00:00.123+01:00", "ip": "2001:db8::1"},
    {**GOOD, "extra_field": {"nested": [1, 2]}, "asn": 16509, "country": "DE"},
    {"event_id": "e2", "type": "signup", "account_id": "a", "ts": "2026-01-05T00:00:00-05:30"},
    {**GOOD, "type": "api_usage", "device_id": None, "ip": None},
    {**GOOD, "type": "api_usage", "requests": 60, "tokens_in": 12000, "tokens_out": 90000, "model": "m-large",
     "prompt_fingerprint": "lsh:9f2c"},
    {**GOOD, "requests": None, "tokens_out": 0},
]

INVALID = [
    (b"not json at all", "not valid JSON"),
    (b"[1, 2, 3]", "Expected `object`"),
    (b'"a string"', "Expected `object`"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "account_id"}).encode(), "missing required field `account_id`"),
    (json.dumps({**GOOD, "account_id": 7}).encode(), "Expected `str`, got `int`"),
    (json.dumps({**GOOD, "account_id": ""}).encode(), "length >= 1"),
    (json.dumps({**GOOD, "type": "purchase"}).encode(), "Invalid enum value 'purchase'"),
    (json.dumps({**GOOD, "ts": "2026-01-05 00:00:00"}).encode(), "not an RFC 3339"),
    (json.dumps({**GOOD, "ts": "2026-01-05T00:00:00"}).encode(), "not an RFC 3339"),
    (json.dumps({**GOOD, "ts": "2026-02-30T00:00:00Z"}).encode(), "not an RFC 3339"),
    (json.dumps({**GOOD, "ip": "300.1.2.3"}).encode(), "not an IPv4 or IPv6"),
    (json.dumps({**GOOD, "ip": "localhost"}).encode(), "not an IPv4 or IPv6"),
    (json.dumps({**GOOD, "device_id": 12}).encode(), "Expected `str | null`"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (json.dumps({**GOOD, "requests": 0}).encode(), "Expected `int` >= 1 - at `$.requests`"),
    (json.dumps({**GOOD, "tokens_out": -5}).encode(), "Expected `int` >= 0 - at `$.tokens_out`"),
    (json.dumps({**GOOD, "tokens_in": 1.5}).encode(), "at `$.tokens_in`"),
    (json.dumps({**GOOD, "requests": "10"}).encode(), "at `$.requests`"),
    (json.dumps({**GOOD, "prompt_fingerprint": ""}).encode(), "at `$.prompt_fingerprint`"),
    (json.dumps({**GOOD, "user_agent": "x" * (MAX_EVENT_BYTES + 1)}).encode(), "over the 65536-byte limit"),
]


@pytest.mark.parametrize("event", VALID)
def test_valid_events_decode(event):
    decoded = decode_event(json.dumps(event).encode())
    assert decoded.account_id == event["account_id"]
    assert decoded.event_id == event["event_id"]


@pytest.mark.parametrize("raw,reason", INVALID)
def test_invalid_events_say_why(raw, reason):
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw)
    assert reason in info.value.reason


def test_decoder_agrees_with_the_schema_file():
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for event in VALID:
        assert not list(validator.iter_errors(event)), event
    for raw, _reason in INVALID:
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue  # not JSON: nothing for a schema to say
        if len(raw) > MAX_EVENT_BYTES:
            continue  # the size limit is stated in the schema's description, enforced before parsing
        assert list(validator.iter_errors(value)), raw[:80]


def test_time_offsets_and_ip_forms_are_normalised():
    a = decode_event(json.dumps({**GOOD, "ts": "2026-01-05T01:00:00+01:00", "ip": "2001:0db8::0001"}).encode())
    b = decode_event(json.dumps({**GOOD, "ts": "2026-01-05T00:00:00Z", "ip": "2001:db8::1"}).encode())
    assert a.ts == b.ts
    assert a.ip == b.ip == "2001:db8::/64"


def test_ipv6_addresses_of_one_subscriber_are_one_entity():
    """Privacy addresses rotate the interface half per session: the /64 is the line (or the server)."""
    rotated = [decode_event(json.dumps({**GOOD, "ip": f"2001:db8:7:42:{k:x}:{k * 7:x}::{k}"}).encode()).ip
               for k in range(1, 40)]
    assert set(rotated) == {"2001:db8:7:42::/64"}
    other_line = decode_event(json.dumps({**GOOD, "ip": "2001:db8:7:43::1"}).encode()).ip
    assert other_line == "2001:db8:7:43::/64"
    assert decode_event(json.dumps({**GOOD, "ip": "::ffff:1.2.3.4"}).encode()).ip == "1.2.3.4"
    assert decode_event(json.dumps({**GOOD, "ip": "fe80::1%eth0"}).encode()).ip == "fe80::/64"


def test_event_types_agree_across_schema_decoder_and_core():
    import typing

    from graph.events import EVENT_TYPES
    from streams.contract import WireEvent

    schema = json.loads(SCHEMA_PATH.read_text())
    decoder = typing.get_args(typing.get_type_hints(WireEvent)["type"])
    assert tuple(schema["properties"]["type"]["enum"]) == decoder == EVENT_TYPES


# -- the kernel's strict decoder (graph/kernel/src/contract.rs) against this one ------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graph import _kernel  # noqa: E402
from graph.events import EventColumns  # noqa: E402


def test_the_kernel_decoder_takes_no_invalid_event():
    for raw, _reason in INVALID:
        assert _kernel.fast_decode(raw) is None, raw[:80]


def test_the_kernel_decoder_agrees_on_the_valid_corpus():
    taken = 0
    for event in VALID:
        raw = json.dumps(event).encode()
        fast = _kernel.fast_decode(raw)
        if fast is not None:
            taken += 1
            assert fast == EventColumns.fields(decode_event(raw)), event
    assert taken >= len(VALID) - 2, "the fast path takes the ordinary events"


_text = st.one_of(st.sampled_from(["a", "Acct-1", "", "x" * 40, "é", "\\u00e9", "tpl:9f"]), st.text(max_size=8))
_times = st.one_of(
    st.builds(lambda y, mo, d, h, mi, s, frac, tz: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{tz}",
              st.integers(1969, 2201), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
              st.integers(0, 60), st.sampled_from(["", ".5", ".123456", ".1234567", "."]),
              st.sampled_from(["Z", "z", "+01:00", "-05:30", "+24:00", "", "+0100"])),
    st.text(max_size=25))
_ips = st.one_of(st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.sampled_from(["0", "1", "01", "255", "256",
                                                                                     "10", "999"])] * 4),
                 st.sampled_from(["2001:db8::1", "2001:0db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "x", ""]))
_values = st.one_of(st.none(), _text, st.integers(-3, 3), st.integers(2**62, 2**65), st.floats(allow_nan=False),
                    st.booleans())
_events = st.fixed_dictionaries(
    {"event_id": _text, "type": st.sampled_from(["login", "signup", "api_usage", "purchase"]), "account_id": _text,
     "ts": _times},
    optional={"device_id": _values, "ip": st.one_of(_ips, _values), "payment_id": _values, "email_domain": _values,
              "asn": st.one_of(st.sampled_from(["AS16509", "as15169", "AS", "ÄS1"]), _values), "country": _values,
              "requests": _values, "tokens_in": _values, "tokens_out": _values, "model": _values,
              "prompt_fingerprint": _values, "user_agent": _values, "extra": _values})


@settings(max_examples=3000, deadline=None)
@given(_events)
def test_whatever_the_kernel_decoder_takes_decodes_the_same_here(event):
    raw = json.dumps(event).encode()
    fast = _kernel.fast_decode(raw)
    if fast is None:
        return  # the adapter's decoder decides
    assert fast == EventColumns.fields(decode_event(raw))


def test_the_kernel_decoder_defers_repeated_keys_and_agrees_on_deep_extras():
    repeated = b'{"event_id":"e1","event_id":"e2","type":"login","account_id":"a","ts":"2026-01-05T00:00:00Z"}'
    deep = json.dumps({**GOOD, "extra": json.loads("[" * 200 + "]" * 200)}).encode()
    assert _kernel.fast_decode(repeated) is None  # (the contract's decoder takes the last id; this one defers)
    assert decode_event(repeated).event_id == "e2"
    fast = _kernel.fast_decode(deep)
    assert fast is None or fast == EventColumns.fields(decode_event(deep))
