"""`switch.core.access_tokens.verify` on tokens made by the official helper (`twilio.jwt.access_token`), and on
tokens altered or built by hand (with PyJWT, the helper's own encoder, or by hand for what PyJWT will not make)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant, VoiceGrant

from switch.core.access_tokens import (
    EXPIRED,
    INVALID_GRANTS,
    INVALID_HEADER,
    INVALID_ISSUER_OR_SUBJECT,
    INVALID_SIGNATURE,
    INVALID_TOKEN,
    NOT_YET_VALID,
    AccessTokenError,
    VerifiedToken,
    verify,
)

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
KEY = "SK" + "1" * 32
SECRET = "s3cretS3cretS3cretS3cretS3cret00"
APP = "AP" + "2" * 32
KEYS = {KEY: SECRET}


def _token(identity: str | None = "alice", grants: list[Any] | None = None, account: str = ACCOUNT,
           key: str = KEY, secret: str = SECRET, **kwargs: Any) -> str:
    token = AccessToken(account, key, secret, identity=identity, **kwargs)
    for grant in [VoiceGrant(outgoing_application_sid=APP, incoming_allow=True)] if grants is None else grants:
        token.add_grant(grant)
    return str(token.to_jwt())


def _verify(token: str, **kwargs: Any) -> VerifiedToken:
    return verify(token, KEYS.get, ACCOUNT, **kwargs)


def _refused(token: str, code: int, **kwargs: Any) -> str:
    with pytest.raises(AccessTokenError) as info:
        _verify(token, **kwargs)
    assert info.value.code == code, info.value.message
    return info.value.message


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(header, claims, signature part) of a token, unverified."""
    claims = pyjwt.decode(token, options={"verify_signature": False})
    return pyjwt.get_unverified_header(token), claims, token.rsplit(".", 1)[1]


def test_a_token_of_the_official_helper_is_accepted_with_its_grants() -> None:
    grant = VoiceGrant(outgoing_application_sid=APP, outgoing_application_params={"queue": "sales", "n": 3,
                                                                                   "vip": True},
                       incoming_allow=True)
    before = int(time.time())
    verified = _verify(_token(grants=[grant], ttl=600))
    assert (verified.identity, verified.account_sid, verified.key_sid) == ("alice", ACCOUNT, KEY)
    assert verified.outgoing_application_sid == APP
    assert dict(verified.outgoing_params) == {"queue": "sales", "n": "3", "vip": "true"}
    assert verified.incoming_allow is True
    assert before + 600 <= verified.expires.timestamp() <= time.time() + 600
    assert verified.expires.tzinfo is dt.UTC
    assert verified.token_id is not None and verified.token_id.startswith(KEY + "-")


def test_outgoing_only_and_incoming_only_grants() -> None:
    outgoing = _verify(_token(grants=[VoiceGrant(outgoing_application_sid=APP)]))
    assert (outgoing.outgoing_application_sid, outgoing.incoming_allow, dict(outgoing.outgoing_params)) == (
        APP, False, {})
    incoming = _verify(_token("bob", grants=[VoiceGrant(incoming_allow=True)]))
    assert (incoming.identity, incoming.outgoing_application_sid, incoming.incoming_allow) == ("bob", None, True)


def test_expired_token() -> None:
    assert "expired" in _refused(_token(valid_until=int(time.time()) - 5), EXPIRED)
    token = _token(ttl=60)
    _refused(token, EXPIRED, now=time.time() + 61)
    assert _verify(token, now=time.time() + 61, leeway=30).identity == "alice"  # clock skew forgiven


def test_expiry_more_than_a_day_ahead_is_refused() -> None:
    assert "24 hours" in _refused(_token(ttl=2 * 86400), EXPIRED)
    assert _verify(_token(ttl=86400 - 5)).identity == "alice"


def test_token_not_yet_valid() -> None:
    _refused(_token(nbf=int(time.time()) + 3600), NOT_YET_VALID)
    later = _token(nbf=int(time.time()) + 3600, ttl=7200)
    assert _verify(later, now=time.time() + 3601).identity == "alice"


def test_wrong_secret_is_a_bad_signature() -> None:
    assert "signature" in _refused(_token(secret="not-the-secret-of-this-key-00000"), INVALID_SIGNATURE)


def test_unknown_or_deleted_key() -> None:
    unknown = "SK" + "9" * 32
    assert unknown in _refused(_token(key=unknown), INVALID_ISSUER_OR_SUBJECT)
    token = _token()
    with pytest.raises(AccessTokenError) as info:
        deleted: dict[str, str] = {}  # the key deleted since the token was made
        verify(token, deleted.get, ACCOUNT)
    assert info.value.code == INVALID_ISSUER_OR_SUBJECT


def test_token_of_another_account() -> None:
    assert "subject" in _refused(_token(account=OTHER_ACCOUNT), INVALID_ISSUER_OR_SUBJECT)


def test_tampered_payload_is_a_bad_signature() -> None:
    token = _token(grants=[VoiceGrant(incoming_allow=True)])
    header, payload, signature = token.split(".")
    claims = _parts(token)[1]
    claims["grants"]["identity"] = "mallory"
    claims["grants"]["voice"]["outgoing"] = {"application_sid": APP}
    _refused(f"{header}.{_b64(claims)}.{signature}", INVALID_SIGNATURE)
    _refused(f"{header}.{payload}.{signature[:-2]}AA", INVALID_SIGNATURE)
    _refused(f"{header}.{payload}.", INVALID_SIGNATURE)


def test_alg_none_and_other_algorithms_are_refused() -> None:
    headers, claims, _ = _parts(_token())
    unsigned = f"{_b64({**headers, 'alg': 'none'})}.{_b64(claims)}."
    assert "HS256" in _refused(unsigned, INVALID_HEADER)
    hs512 = pyjwt.encode(claims, SECRET * 2, algorithm="HS512", headers={"cty": "twilio-fpa;v=1"})
    _refused(hs512, INVALID_HEADER)


def test_header_content_type_type_and_kid() -> None:
    _, claims, _ = _parts(_token())
    _refused(pyjwt.encode(claims, SECRET, algorithm="HS256"), INVALID_HEADER)  # no cty
    _refused(pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"cty": "twilio-fpa;v=2"}), INVALID_HEADER)
    _refused(pyjwt.encode(claims, SECRET, algorithm="HS256", headers={"cty": "twilio-fpa;v=1", "typ": "JWS"}),
             INVALID_HEADER)
    other_kid = {"cty": "twilio-fpa;v=1", "kid": "SK" + "3" * 32}
    _refused(pyjwt.encode(claims, SECRET, algorithm="HS256", headers=other_kid), INVALID_HEADER)
    same_kid = {"cty": "twilio-fpa;v=1", "kid": KEY}
    assert _verify(pyjwt.encode(claims, SECRET, algorithm="HS256", headers=same_kid)).key_sid == KEY


def test_no_voice_grant() -> None:
    assert "voice grant" in _refused(_token(grants=[VideoGrant(room="r")]), INVALID_GRANTS)
    assert "voice grant" in _refused(_token(grants=[]), INVALID_GRANTS)
    assert "neither" in _refused(_token(grants=[VoiceGrant()]), INVALID_GRANTS)  # a grant that allows nothing


def test_no_identity() -> None:
    assert "identity" in _refused(_token(identity=None), INVALID_GRANTS)


def test_malformed_grants() -> None:
    headers, claims, _ = _parts(_token())

    def signed(grants: Any) -> str:
        return pyjwt.encode({**claims, "grants": grants}, SECRET, algorithm="HS256", headers=headers)

    _refused(signed("voice"), INVALID_GRANTS)
    _refused(signed({"identity": "a", "voice": {"outgoing": "AP1"}}), INVALID_GRANTS)
    _refused(signed({"identity": "a", "voice": {"outgoing": {"application_sid": APP, "params": [1]}}}),
             INVALID_GRANTS)
    _refused(signed({"identity": "a", "voice": {"outgoing": {"application_sid": APP, "params": {"x": {}}}}}),
             INVALID_GRANTS)
    _refused(signed({"identity": 7, "voice": {"incoming": {"allow": True}}}), INVALID_GRANTS)


def test_bad_format() -> None:
    for token in ("", "abc", "a.b", "a.b.c.d", "@@.e30.x", "e30.bm90IGpzb24.x", "W10.e30.x", ".e30.x"):
        _refused(token, INVALID_TOKEN)
    headers, claims, _ = _parts(_token())
    _refused(pyjwt.encode({**claims, "exp": "tomorrow"}, SECRET, algorithm="HS256", headers=headers), EXPIRED)
    no_exp = {k: v for k, v in claims.items() if k != "exp"}
    _refused(pyjwt.encode(no_exp, SECRET, algorithm="HS256", headers=headers), EXPIRED)
    no_iss = {k: v for k, v in claims.items() if k != "iss"}
    _refused(pyjwt.encode(no_iss, SECRET, algorithm="HS256", headers=headers), INVALID_ISSUER_OR_SUBJECT)


def test_signature_matches_pyjwt_for_any_secret() -> None:
    """The standard-library HS256 agrees with PyJWT's (what the helper signs with), non-ASCII secrets included."""
    secret = "sécret-ключ-" + "x" * 20
    token = _token(secret=secret)
    assert verify(token, {KEY: secret}.get, ACCOUNT).identity == "alice"
