"""The browser client: its pages under ``/client/`` and its signalling WebSocket ``/client/ws``.

The pages (``client_static/``: ``softswitch.js``, a library shaped like Twilio's Voice JS SDK, and ``index.html``,
a softphone that uses it) are public, as a web app's would be: the access token is the credential.  The socket
speaks JSON text messages, one object each, with a ``type``:

    browser -> switch                                   switch -> browser
    hello {token}                                       ready {identity} | error {code, message}, then closed
    token {token}  (the SDK's updateToken)              ready {identity} | error {code, message}
                                                        error {code: 20104} when the token expires
    call {id, params {To, ...}, sdp}                    answer {id, callSid, sdp} | error {id, code, message}
    accept {callSid, sdp}                               answer {callSid, sdp} | error {callSid, code, message}
    reject {callSid} / dtmf {callSid, digits} / hangup {callSid}
                                                        incoming {callSid, from, to, params}
                                                        hangup {callSid, status}

A token is checked at ``hello`` (`switch.core.access_tokens`: Twilio's codes 20101-20107); a refused one closes the
socket with code 4001. When it expires, the browser is told (error 20104) and is unregistered, as Twilio's Device
is: no call rings it and it can place none, while its calls in progress go on; a new token for the same identity
(``token``) registers it again. A refused new token is answered with its error and changes nothing. The browser
always offers SDP and the switch answers (`switch.core.browsers`). A message that is not JSON, of an unknown type,
or about another browser's call gets an ``error`` and changes nothing; closing the socket ends the browser's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from switch.core.access_tokens import EXPIRED, INVALID_TOKEN, AccessTokenError, VerifiedToken, verify
from switch.core.browsers import GENERAL_ERROR, BrowserError, BrowserPhones
from switch.core.sip_calls import CLIENT_PREFIX

log = logging.getLogger("switch.dialects.client")

STATIC = Path(__file__).with_name("client_static")
HELLO_TIMEOUT = 10.0  # seconds a new socket may take to say hello
MAX_MESSAGE = 256 * 1024  # an SDP is a few kB
REFUSED = 4001  # the close code for a refused token
GOING_AWAY = 1001  # the close code when the switch shuts down


class SocketLink:
    """One signed-in browser (`switch.core.browsers.PhoneLink`): its token's grants and an ordered outbox."""

    def __init__(self, ws: web.WebSocketResponse, token: VerifiedToken) -> None:
        self.identity = token.identity.removeprefix(CLIENT_PREFIX)
        self.account_sid = token.account_sid
        self._ws = ws
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer = asyncio.ensure_future(self._write())
        self._expiry: asyncio.TimerHandle | None = None
        self.renew(token)

    def renew(self, token: VerifiedToken) -> None:
        """Take `token`'s grants (at hello, or a new token for the same identity) until it expires."""
        if token.identity.removeprefix(CLIENT_PREFIX) != self.identity or token.account_sid != self.account_sid:
            raise AccessTokenError(INVALID_TOKEN, "the new token is for another identity or account")
        self.incoming_allow = token.incoming_allow
        self.application_sid = token.outgoing_application_sid
        self.outgoing_params: Mapping[str, str] = dict(token.outgoing_params)
        self.expired = False
        if self._expiry is not None:
            self._expiry.cancel()
        left = (token.expires - dt.datetime.now(dt.UTC)).total_seconds()
        self._expiry = asyncio.get_running_loop().call_later(max(left, 0.0), self._expire)

    def _expire(self) -> None:
        self.expired, self.incoming_allow = True, False
        log.info("browser client:%s: its access token expired; unregistered", self.identity)
        self.send(_error(EXPIRED, "Access Token expired or expiration date invalid"))

    def send(self, message: dict[str, Any]) -> None:
        if not self._ws.closed:
            self._outbox.put_nowait(message)

    async def _write(self) -> None:
        while (message := await self._outbox.get()) is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(json.dumps(message))

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._outbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, 2.0)


def add_client_routes(app: web.Application, phones: BrowserPhones, account_sid: str,
                      secret_of: Callable[[str], str | None]) -> None:
    """Mount the client's pages and its WebSocket; tokens are checked against `account_sid`'s API keys."""

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    sockets: set[web.WebSocketResponse] = set()

    async def socket(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        token = await _hello(ws, account_sid, secret_of)
        if token is None:
            return ws
        sockets.add(ws)
        link = SocketLink(ws, token)
        phones.register(link)
        link.send({"type": "ready", "identity": link.identity})
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    if message.type is WSMsgType.BINARY:
                        link.send(_error(GENERAL_ERROR, "messages are JSON text"))
                    continue
                await _handle(phones, link, message.data, secret_of)
        finally:
            sockets.discard(ws)
            phones.closed(link)
            await link.close()
        return ws

    async def close_sockets(app: web.Application) -> None:  # shutdown waits for handlers: end them first
        for ws in list(sockets):
            await ws.close(code=GOING_AWAY, message=b"the switch is shutting down")

    app.on_shutdown.append(close_sockets)

    app.router.add_get("/client/ws", socket)
    app.router.add_get("/client", _redirect)
    app.router.add_get("/client/", page)
    app.router.add_static("/client/", STATIC)


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/client/")


def _error(code: int, message: str, **about: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **about}


async def _hello(ws: web.WebSocketResponse, account_sid: str,
                 secret_of: Callable[[str], str | None]) -> VerifiedToken | None:
    """The browser's token from its first message, checked; None (the socket told and closed) if refused."""
    try:
        first = await ws.receive(timeout=HELLO_TIMEOUT)
        hello = json.loads(first.data) if first.type is WSMsgType.TEXT else None
    except (TimeoutError, ValueError):
        hello = None
    try:
        if not isinstance(hello, dict) or hello.get("type") != "hello" or not isinstance(hello.get("token"), str):
            raise AccessTokenError(20101, 'the first message must be {"type": "hello", "token": "<access token>"}')
        return verify(hello["token"], secret_of, account_sid)
    except AccessTokenError as exc:
        log.info("browser refused: %s (%d)", exc.message, exc.code)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(_error(exc.code, exc.message)))
        await ws.close(code=REFUSED, message=b"access token refused")
        return None


async def _handle(phones: BrowserPhones, link: SocketLink, text: str,
                  secret_of: Callable[[str], str | None]) -> None:
    """One message of a signed-in browser; what cannot be done is answered with an ``error``."""
    try:
        message = json.loads(text)
    except ValueError:
        link.send(_error(GENERAL_ERROR, "a message must be a JSON object"))
        return
    if not isinstance(message, dict):
        link.send(_error(GENERAL_ERROR, "a message must be a JSON object"))
        return
    kind = message.get("type")
    about = {k: str(message[k]) for k in ("id", "callSid") if isinstance(message.get(k), str)}
    try:
        match kind:
            case "token":
                link.renew(verify(str(message.get("token", "")), secret_of, link.account_sid))
                link.send({"type": "ready", "identity": link.identity})
            case "call":
                if link.expired:
                    raise BrowserError(EXPIRED, "Access Token expired: update it before placing a call")
                params = message.get("params") or {}
                if not isinstance(params, dict):
                    raise BrowserError(GENERAL_ERROR, "params must be an object of strings")
                sid, answer = await phones.place(link, {str(k): str(v) for k, v in params.items()},
                                                 _sdp(message))
                link.send({"type": "answer", **about, "callSid": sid, "sdp": answer})
            case "accept":
                answer = await phones.accept(link, _call_sid(message), _sdp(message))
                link.send({"type": "answer", **about, "sdp": answer})
            case "reject":
                phones.reject(link, _call_sid(message))
            case "dtmf":
                phones.dtmf(link, _call_sid(message), str(message.get("digits", "")))
            case "hangup":
                phones.hangup(link, _call_sid(message))
            case _:
                raise BrowserError(GENERAL_ERROR, f"unknown message type {kind!r}")
    except BrowserError as exc:
        link.send(_error(exc.code, exc.message, **about))
    except AccessTokenError as exc:
        log.info("browser client:%s: new token refused: %s (%d)", link.identity, exc.message, exc.code)
        link.send(_error(exc.code, exc.message))
    except Exception:
        log.exception("browser client:%s: %r failed", link.identity, kind)
        link.send(_error(GENERAL_ERROR, f"{kind} failed in the switch", **about))


def _sdp(message: dict[str, Any]) -> str:
    sdp = message.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BrowserError(GENERAL_ERROR, "sdp must be the browser's SDP offer")
    return sdp


def _call_sid(message: dict[str, Any]) -> str:
    sid = message.get("callSid")
    if not isinstance(sid, str) or not sid:
        raise BrowserError(GENERAL_ERROR, "callSid is missing")
    return sid
