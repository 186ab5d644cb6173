"""`switch.core.signature.compute_signature` must agree with the official twilio RequestValidator."""

from __future__ import annotations

import urllib.parse

import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from switch.core.signature import compute_signature

TOKEN = "12345"
POST_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
POST_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
# The example from Twilio's security documentation.
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_documentation_example() -> None:
    assert RequestValidator(TOKEN).compute_signature(POST_URL, POST_PARAMS) == DOC_SIGNATURE
    assert compute_signature(TOKEN, POST_URL, POST_PARAMS.items()) == DOC_SIGNATURE


@pytest.mark.parametrize(
    "params",
    [
        {"CallSid": "CA" + "0" * 32, "CallStatus": "ringing", "From": "sip:alice@example.com",
         "To": "+15550100", "Direction": "outbound-api", "ApiVersion": "2010-04-01",
         "AccountSid": "AC" + "1" * 32, "Timestamp": "Mon, 01 Jan 2024 00:00:00 +0000"},
        {"b": "2", "a": "1", "A": "0", "ab": "", "a b": "é ☎", "_": "&=?"},
        {},
    ],
)
def test_post_agrees_with_validator(params: dict[str, str]) -> None:
    url = "http://127.0.0.1:8000/status"
    sig = compute_signature(TOKEN, url, params.items())
    validator = RequestValidator(TOKEN)
    assert sig == validator.compute_signature(url, params)
    assert validator.validate(url, params, sig)
    assert not validator.validate(url + "x", params, sig)
    assert not RequestValidator("other").validate(url, params, sig)


def test_post_param_order_does_not_matter() -> None:
    pairs = list(POST_PARAMS.items())
    assert compute_signature(TOKEN, POST_URL, pairs) == compute_signature(TOKEN, POST_URL, reversed(pairs))


def test_repeated_keys_agree_with_validator_multidict() -> None:
    """Repeated keys with distinct values: Twilio sorts the values of each key, and so do we.

    (RequestValidator accepts a dict or a MultiDict-like object with getall/getlist, not a list of pairs.)
    """
    pairs = [("StatusCallbackEvent", "ringing"), ("To", "+1"), ("StatusCallbackEvent", "answered"),
             ("StatusCallbackEvent", "completed")]
    url = "https://example.com/cb"
    sig = compute_signature(TOKEN, url, pairs)
    validator = RequestValidator(TOKEN)
    assert sig == validator.compute_signature(url, MultiDict(pairs))
    assert validator.validate(url, MultiDict(pairs), sig)


def test_get_signs_full_url_with_query() -> None:
    params = [("CallSid", "CA" + "0" * 32), ("CallStatus", "in-progress"), ("From", "+15550199"),
              ("To", "sip:bob@example.com"), ("Caller Name", "A & B")]
    url = "https://example.com/status?" + urllib.parse.urlencode(params)
    sig = compute_signature(TOKEN, url)
    validator = RequestValidator(TOKEN)
    assert sig == validator.compute_signature(url, {})
    assert validator.validate(url, {}, sig)
    assert validator.validate(url, None, sig)
    # the query string is part of what is signed
    assert not validator.validate(url.replace("in-progress", "completed"), {}, sig)


def test_validator_accepts_url_with_or_without_default_port() -> None:
    url = "https://example.com/status?x=1"
    sig = compute_signature(TOKEN, url, POST_PARAMS.items())
    assert RequestValidator(TOKEN).validate("https://example.com:443/status?x=1", POST_PARAMS, sig)


def test_non_ascii_token_and_values() -> None:
    token = "tøken"
    params = {"Body": "naïve ☎"}
    url = "https://example.com/ü"
    assert compute_signature(token, url, params.items()) == RequestValidator(token).compute_signature(url, params)
