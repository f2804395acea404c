from __future__ import annotations

import hashlib
import hmac

from shared import signing

SECRET = "s3cret-s3cret-s3cret"
BODY = b'{"order_id":"o1_01JD0Z3N5W8YQ2T4V6X8Z0A1B2","transaction_id":"t1","status":"success"}'


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, 1_700_000_000, BODY) == f"v1={expected}"


def test_verify_accepts_what_headers_produce() -> None:
    h = signing.headers(SECRET, BODY, now=1_700_000_000)
    assert signing.verify(SECRET, h[signing.TIMESTAMP_HEADER], h[signing.SIGNATURE_HEADER], BODY, now=1_700_000_100)


def test_verify_refuses_missing_malformed_or_wrong_signatures() -> None:
    ts = "1700000000"
    good = signing.sign(SECRET, ts, BODY)
    now = 1_700_000_000
    assert not signing.verify(SECRET, ts, None, BODY, now=now)
    assert not signing.verify(SECRET, None, good, BODY, now=now)
    assert not signing.verify(SECRET, ts, good[3:], BODY, now=now)
    assert not signing.verify(SECRET, ts, "v1=" + "0" * 64, BODY, now=now)
    assert not signing.verify("another-secret-value", ts, good, BODY, now=now)
    assert not signing.verify(SECRET, "17e8", good, BODY, now=now)
    assert not signing.verify(SECRET, ts, "v1=ünïcode", BODY, now=now)


def test_verify_refuses_a_signature_over_a_different_body() -> None:
    ts = "1700000000"
    good = signing.sign(SECRET, ts, BODY)
    assert not signing.verify(SECRET, ts, good, BODY.replace(b"success", b"failed"), now=1_700_000_000)


def test_verify_refuses_timestamps_more_than_300_seconds_away() -> None:
    ts = "1700000000"
    good = signing.sign(SECRET, ts, BODY)
    assert signing.verify(SECRET, ts, good, BODY, now=1_700_000_300)
    assert not signing.verify(SECRET, ts, good, BODY, now=1_700_000_301)
    assert not signing.verify(SECRET, ts, good, BODY, now=1_699_999_699)
