"""The demo's customer app: a small TwiML web app (aiohttp) on 127.0.0.1, in the demo's own process.

It is what a Twilio customer would write, built with the official `VoiceResponse`:

    POST /voice      the call is answered: greet the customer and <Gather> one digit
    POST /gathered   the <Gather> action: "1" <Dial>s the agent, recorded on two channels, with the agent
                     leg's own status callbacks; anything else says sorry and hangs up
    POST /dialed     the <Dial> action (the agent hung up): hold music, <Play loop="0"> of /hold.wav
    GET  /hold.wav   a little arpeggio generated here (8 kHz WAV)
    POST /goodbye    where the REST redirect moves the caller: a goodbye <Say>, then <Hangup>
    POST /status, /agent-status, /recording-status    status callbacks (the caller's, the agent's, the
                                                      recording's); answered 204

Every request is kept as an `AppRequest`, with whether its X-Twilio-Signature validates (checked with the
`twilio` library's `RequestValidator` and the account's auth token), and handed to `on_request` as it comes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from media.audio import encode

HOLD_RATE = 8000
HOLD_NOTES_HZ = (523.25, 659.25, 783.99, 659.25)  # C5 E5 G5 E5, a quarter second each
STATUS_EVENTS = "initiated ringing answered completed"
CALLBACK_PATHS = ("/status", "/agent-status", "/recording-status")
TWIML_PATHS = ("/voice", "/gathered", "/dialed", "/goodbye")


def hold_music() -> bytes:
    """Two seconds of a soft C-major arpeggio (it loops seamlessly: every note fades in and out)."""
    note = int(HOLD_RATE * 0.25)
    t = np.arange(note) / HOLD_RATE
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
    notes = [0.3 * envelope * np.sin(2 * np.pi * hz * t) for hz in HOLD_NOTES_HZ]
    return encode(np.concatenate(notes * 2), HOLD_RATE, "wav")


@dataclass(frozen=True)
class AppRequest:
    """One request the app received."""

    t: float  # time.time() on arrival
    method: str
    path: str
    params: dict[str, str]
    signature: str | None
    signature_valid: bool
    response: str  # the TwiML document the app answered with ("" for anything else)

    @property
    def call_sid(self) -> str:
        return self.params.get("CallSid", "")


class DemoApp:
    """The TwiML app; `agent_uri` is where <Dial> rings the agent."""

    def __init__(self, auth_token: str, agent_uri: str = "",
                 on_request: Callable[[AppRequest], None] | None = None) -> None:
        self.validator = RequestValidator(auth_token)
        self.agent_uri = agent_uri
        self.on_request = on_request
        self.requests: list[AppRequest] = []
        self.port = 0
        self._hold = hold_music()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> DemoApp:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- requests -----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form = await request.post() if request.method == "POST" else request.query
        params = {k: str(v) for k, v in form.items()}
        signature = request.headers.get("X-Twilio-Signature")
        url = str(request.url)
        valid = signature is not None and bool(
            self.validator.validate(url, params if request.method == "POST" else {}, signature))
        builder = {"/voice": self.voice, "/gathered": self.gathered, "/dialed": self.dialed,
                   "/goodbye": self.goodbye}.get(request.path)
        document = str(builder(params)) if builder is not None else ""
        seen = AppRequest(time.time(), request.method, request.path, params, signature, valid, document)
        self.requests.append(seen)
        if self.on_request is not None:
            self.on_request(seen)
        async with self._changed:
            self._changed.notify_all()
        if request.path == "/hold.wav":
            return web.Response(body=self._hold, content_type="audio/wav")
        if builder is None:
            return web.Response(status=204)
        return web.Response(text=document, content_type="text/xml")

    async def wait_for(self, predicate: Callable[[list[AppRequest]], bool], timeout: float, what: str) -> None:
        """Wait until `predicate(requests)` holds; TimeoutError naming `what` otherwise."""
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.requests)), timeout)
        except TimeoutError:
            raise TimeoutError(f"the app did not see {what} within {timeout:g} s") from None

    # -- the TwiML documents ------------------------------------------------------------------------------
    def voice(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        gather = Gather(num_digits=1, action=self.url("/gathered"), timeout=6)
        gather.say("Welcome to the soft switch demo. Press 1 to talk to an agent.")
        response.append(gather)
        response.say("We did not get your answer. Goodbye.")
        return response

    def gathered(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        if params.get("Digits") != "1":
            response.say("Sorry, that is not an option. Goodbye.")
            response.hangup()
            return response
        dial = Dial(action=self.url("/dialed"), record="record-from-answer-dual", timeout=10,
                    recording_status_callback=self.url("/recording-status"),
                    recording_status_callback_event="in-progress completed")
        dial.sip(self.agent_uri, status_callback=self.url("/agent-status"), status_callback_event=STATUS_EVENTS)
        response.append(dial)
        return response

    def dialed(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.play(self.url("/hold.wav"), loop=0)
        return response

    def goodbye(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say("Thank you for calling. Goodbye.")
        response.hangup()
        return response
