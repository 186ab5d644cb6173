"""Browser softphones in a real headless Chromium (tests/peers/browser.py) against the switch: the page at
/client/, its WebSocket, WebRTC media on aiortc, and the calls' statuses and callbacks.

The browser's microphone is a fake playing a 700 Hz sine; the lab phone at the far end records what it hears and
its tone is measured by FFT; the page measures what it hears with a WebAudio analyser and reports it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from media.audio import read_wav
from media.tones import band_energy_ratio, rms
from tests.peers.browser import BrowserPhone, phone_query
from tests.peers.harness import ACCOUNT_SID, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

BROWSER_HZ, PHONE_HZ, PLAY_HZ = 700.0, 1000.0, 440.0
DIAL_CLIENT = "+15550170"
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]

TokenMaker = Callable[..., str]


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("browser"), workers=1,
                         numbers=[{"number": DIAL_CLIENT, "voice_url": sink.url("/dial-client")}])
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def grants(switch: SwitchProcess, sink: WebhookSink) -> dict[str, str]:
    """An API key (its secret) and the Application the browser's calls run, made with the official client."""
    client = switch.client()
    key = client.new_keys.create(friendly_name="browser-e2e")
    app = client.applications.create(friendly_name="browser", voice_url=sink.url("/app"),
                                     status_callback=sink.url("/app-status"))
    return {"key": key.sid, "secret": key.secret, "app": app.sid}


@pytest.fixture(scope="module")
def token(grants: dict[str, str]) -> TokenMaker:
    def make(identity: str = "alice", secret: str | None = None, ttl: int = 600) -> str:
        made = AccessToken(ACCOUNT_SID, grants["key"], secret or grants["secret"], identity=identity, ttl=ttl)
        made.add_grant(VoiceGrant(outgoing_application_sid=grants["app"], incoming_allow=True))
        return str(made.to_jwt())
    return make


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserPhone]:
    with BrowserPhone(tone_hz=BROWSER_HZ) as phone:
        yield phone


def _open(browser: BrowserPhone, switch: SwitchProcess, token: str, **options: Any) -> None:
    browser.open(f"{switch.base_url}/client/" + phone_query(token, **options))
    browser.wait_for_event("registered", 10)


def _call_app(browser: BrowserPhone, sink: WebhookSink, to: str) -> str:
    """The browser calls its application (To=`to`): the CallSid, once the app has been asked for its TwiML."""
    browser.run(f"return softswitchPage.call('{to}', {{}})")
    sid = browser.wait_for_event("accept:", 15).split(":", 1)[1]
    wait_until(lambda: any(h.params.get("CallSid") == sid for h in sink.for_path("/app")), 10, "the app fetched")
    return sid


def _tone(path: Path, hz: float, skip: float = 0.5) -> tuple[float, float]:
    """The share of `hz` in what the lab phone recorded (its first `skip` s left out) and its RMS."""
    samples, rate = read_wav(path)
    heard = np.asarray(samples[int(skip * rate):], dtype=np.float64)
    return band_energy_ratio(heard, rate, hz), rms(heard)


def _statuses(sink: WebhookSink, path: str, sid: str, count: int) -> list[str]:
    return [h.params["CallStatus"] for h in sink.wait_statuses(path, sid, count)]


def test_refused_tokens_say_why_and_register_nothing(browser: BrowserPhone, switch: SwitchProcess,
                                                     token: TokenMaker) -> None:
    for bad, code in ((token(ttl=-60), "20104"), (token(secret="x" * 32), "20107"), ("not.a.token", "20101")):
        browser.open(f"{switch.base_url}/client/" + phone_query(bad))
        browser.wait_for_event("error:", 10)
        state = browser.state()
        assert f"error:{code}" in state["events"] and not state["registered"], browser.describe()


def test_an_application_call_from_the_browser_reaches_a_lab_phone(browser: BrowserPhone, switch: SwitchProcess,
                                                                 sink: WebhookSink, token: TokenMaker,
                                                                 tmp_path: Path) -> None:
    """The token's application runs with Twilio's parameters; its <Dial> bridges the browser to a SIP phone:
    each hears the other's tone; the browser hangs up; the call completes with its callback."""
    heard = tmp_path / "phone-heard.wav"
    with PhoneProcess(["--answer", "auto", "--tone", str(PHONE_HZ), "--record", str(heard)]) as phone:
        sink.twiml("/app", f"<Response><Dial><Sip>{phone.uri('bob')}</Sip></Dial></Response>")
        _open(browser, switch, token(), codec="opus")
        browser.run("return softswitchPage.call('+15550123', {Topic: 'billing'})")
        sid = browser.wait_for_event("accept:", 15).split(":", 1)[1]
        phone.wait_for("answered", 15)
        browser.wait_heard(PHONE_HZ, tolerance=20, timeout=10)
        browser.wait_until(lambda s: s["codec"] == "audio/opus", "Opus negotiated")
        wait_until(lambda: len(phone.events()) > 0 and heard.exists() and heard.stat().st_size > 8000 * 2 * 2,
                   10, "the phone recorded two seconds")
        browser.run("softswitchPage.hangup()")
        phone.wait_for("hangup", 10)
    request = sink.for_path("/app")[-1].params
    assert {k: request.get(k) for k in ("CallSid", "From", "Caller", "To", "Direction", "ApplicationSid", "Topic",
                                        "CallStatus")} == {
        "CallSid": sid, "From": "client:alice", "Caller": "client:alice", "To": "+15550123",
        "Direction": "inbound", "ApplicationSid": request["ApplicationSid"], "Topic": "billing",
        "CallStatus": "ringing"}
    assert request["ApplicationSid"].startswith("AP")
    assert _statuses(sink, "/app-status", sid, 1) == ["completed"]
    share, level = _tone(heard, BROWSER_HZ)
    assert share > 0.5 and level > 300, f"the phone heard {share:.0%} of 700 Hz at RMS {level:.0f}"
    assert browser.wait_for_event("disconnect:", 5) == f"disconnect:{sid}"


def test_digits_from_the_browser_reach_a_gather(browser: BrowserPhone, switch: SwitchProcess, sink: WebhookSink,
                                               token: TokenMaker) -> None:
    sink.twiml("/app", '<Response><Gather numDigits="3" action="/gathered" timeout="10"><Pause length="10"/>'
                       "</Gather></Response>")
    sink.twiml("/gathered", "<Response><Hangup/></Response>")
    _open(browser, switch, token())
    sid = _call_app(browser, sink, "+15550124")
    browser.run("softswitchPage.digits('123')")
    gathered = sink.wait_for(lambda hooks: any(h.path == "/gathered" for h in hooks))
    assert [h for h in gathered if h.path == "/gathered"][-1].params["Digits"] == "123"
    assert browser.wait_for_event("disconnect:", 10) == f"disconnect:{sid}"


def test_muting_the_browser_sends_silence_a_record_hears(browser: BrowserPhone, switch: SwitchProcess,
                                                         sink: WebhookSink, token: TokenMaker) -> None:
    """<Record> hears the browser's tone until it mutes; then silence, and the silence timeout ends it long
    before its maxLength."""
    sink.twiml("/app", '<Response><Record timeout="2" maxLength="30" playBeep="false" action="/recorded"/>'
                       "</Response>")
    sink.twiml("/recorded", "<Response><Hangup/></Response>")
    _open(browser, switch, token())
    sid = _call_app(browser, sink, "+15550125")
    time.sleep(3.0)
    browser.run("softswitchPage.mute(true)")
    muted = time.monotonic()
    assert browser.state()["muted"] is True
    done = sink.wait_for(lambda hooks: any(h.path == "/recorded" for h in hooks), timeout=15)
    assert time.monotonic() - muted < 8, "the Record did not hear the silence"
    recorded = [h for h in done if h.path == "/recorded"][-1].params
    samples, rate = switch.recording(recorded["RecordingUrl"])
    tone = np.asarray(samples[:, 0], dtype=np.float64)
    assert 2 <= int(recorded["RecordingDuration"]) <= 8
    assert band_energy_ratio(tone[rate // 2:rate * 2], rate, BROWSER_HZ) > 0.5, "the browser's tone, before mute"
    browser.run("softswitchPage.mute(false)")
    assert browser.wait_for_event("disconnect:", 10) == f"disconnect:{sid}"


def test_a_rest_call_to_the_client_rings_the_browser_which_accepts(browser: BrowserPhone, switch: SwitchProcess,
                                                                  sink: WebhookSink, token: TokenMaker) -> None:
    """REST To=client:alice: the browser rings, accepts (PCMU), hears the <Play>; REST ends it; every status
    callback in order."""
    _open(browser, switch, token(), codec="pcmu", autoaccept=True)
    tone = sink.tone("/play-440.wav", PLAY_HZ)
    call = switch.client().calls.create(
        to="client:alice", from_="+15550100", twiml=f'<Response><Play loop="0">{tone}</Play></Response>',
        status_callback=sink.url("/rest-status"), status_callback_event=["initiated", "ringing", "answered",
                                                                          "completed"])
    assert browser.wait_for_event("incoming:", 10) == f"incoming:{call.sid}"
    assert browser.wait_for_event("accept:", 10) == f"accept:{call.sid}"
    browser.wait_heard(PLAY_HZ, tolerance=20, timeout=10)
    browser.wait_until(lambda s: s["codec"] == "audio/PCMU", "PCMU negotiated")
    switch.client().calls(call.sid).update(status="completed")
    assert browser.wait_for_event("disconnect:", 10) == f"disconnect:{call.sid}"
    assert _statuses(sink, "/rest-status", call.sid, 4) == ["initiated", "ringing", "in-progress", "completed"]
    fetched = switch.client().calls(call.sid).fetch()
    assert (fetched.status, fetched.to, fetched.direction) == ("completed", "client:alice", "outbound-api")


def test_a_browser_that_rejects_leaves_the_call_busy(browser: BrowserPhone, switch: SwitchProcess,
                                                     sink: WebhookSink, token: TokenMaker) -> None:
    _open(browser, switch, token(), autoaccept=False, autoreject=True)
    call = switch.client().calls.create(
        to="client:alice", from_="+15550100", twiml="<Response><Pause length='5'/></Response>",
        status_callback=sink.url("/reject-status"), status_callback_event=["initiated", "ringing", "completed"])
    assert browser.wait_for_event("reject:", 10) == f"reject:{call.sid}"
    assert _statuses(sink, "/reject-status", call.sid, 3) == ["initiated", "ringing", "busy"]


def test_dial_client_from_a_phone_and_the_tab_closed_mid_call(browser: BrowserPhone, switch: SwitchProcess,
                                                             sink: WebhookSink, token: TokenMaker,
                                                             tmp_path: Path) -> None:
    """A SIP phone's call runs <Dial><Client> alice with two <Parameter>s: the browser's call has them as its
    customParameters and accepts, audio flows both ways; then the tab closes: the child completes with its
    callbacks and the <Dial>'s action hears `completed`."""
    sink.twiml("/dial-client", '<Response><Dial action="/dial-done" timeout="15"><Client statusCallback="'
               + sink.url("/child-status") + '" statusCallbackEvent="initiated ringing answered completed">'
               '<Identity>alice</Identity><Parameter name="order" value="42"/>'
               '<Parameter name="note" value="VIP &amp; late"/></Client></Dial></Response>')
    sink.twiml("/dial-done", "<Response><Hangup/></Response>")
    _open(browser, switch, token(), autoaccept=True)
    heard = tmp_path / "caller-heard.wav"
    with PhoneProcess(["--call", f"sip:{DIAL_CLIENT}@{switch.sip_uri_host}", "--tone", str(PHONE_HZ),
                       "--record", str(heard)]) as phone:
        child = browser.wait_for_event("accept:", 15).split(":", 1)[1]
        custom = json.loads(browser.wait_for_event("custom:", 1).split(":", 1)[1])
        assert custom == [["order", "42"], ["note", "VIP & late"]]
        browser.wait_heard(PHONE_HZ, tolerance=20, timeout=10)
        wait_until(lambda: heard.exists() and heard.stat().st_size > 8000 * 2 * 2, 10, "two seconds recorded")
        browser.close_tab()
        phone.wait_for("hangup", 15)
    assert _statuses(sink, "/child-status", child, 4) == ["initiated", "ringing", "in-progress", "completed"]
    assert not any("order" in h.params for h in sink.for_path("/child-status"))  # for the browser alone
    done = sink.wait_for(lambda hooks: any(h.path == "/dial-done" for h in hooks))
    action = [h for h in done if h.path == "/dial-done"][-1].params
    assert (action["DialCallStatus"], action["DialCallSid"]) == ("completed", child)
    share, level = _tone(heard, BROWSER_HZ, skip=1.0)
    assert share > 0.5 and level > 300, f"the caller heard {share:.0%} of 700 Hz at RMS {level:.0f}"


TOKEN_LIFE = """
const [shortToken, freshToken, done] = arguments;
const events = [];
const device = new Softswitch.Device(shortToken, {tokenRefreshMs: 1500});
for (const name of ['registered', 'unregistered', 'tokenWillExpire']) device.on(name, () => events.push(name));
device.on('error', (err) => events.push(`error:${err.code}`));
device.on('unregistered', () => setTimeout(() => device.updateToken(freshToken), 200));
device.on('registered', () => {
  if (events.filter((e) => e === 'registered').length === 2) {
    device.destroy();
    done(events);
  }
});
device.register().catch((err) => done([`register failed: ${err.code}`]));
setTimeout(() => done([...events, 'timeout']), 8000);
"""


def test_the_library_warns_before_the_token_expires_and_takes_a_new_one(
        browser: BrowserPhone, switch: SwitchProcess, token: TokenMaker) -> None:
    """Twilio's Device lifecycle in Chromium against the switch: 'tokenWillExpire' tokenRefreshMs before exp,
    error 20104 and 'unregistered' at exp, and `updateToken` registers the same Device again."""
    browser.open(f"{switch.base_url}/client/")
    events = browser.web.execute_async_script(TOKEN_LIFE, token("zoe", ttl=3), token("zoe"))
    assert events == ["registered", "tokenWillExpire", "error:20104", "unregistered", "registered"]
