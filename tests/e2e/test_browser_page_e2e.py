"""The browser softphone's page and library (switch/dialects/twilio/client_static) in headless Chromium, alone.

No switch here: the static folder is served by a plain HTTP server on 127.0.0.1, and only what happens inside the
browser is checked.  The page loads without a script error and exposes `window.Softswitch`; the library's offer
path (`Softswitch.offerPeer`: fake microphone, codec preferences, gathered loopback candidates) feeds a second
peer connection in the same page, whose audio the page's AnalyserNode measures at the fake WAV's frequency.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.peers.browser import STATIC_DIR, BrowserPhone

TONE_HZ = 700.0

LOOPBACK = """
const [codec, done] = arguments;
(async () => {
  const mic = await navigator.mediaDevices.getUserMedia({audio: true});
  const a = await Softswitch.offerPeer(mic, {codecPreferences: [codec], iceFilter: 'loopback'});
  const b = new RTCPeerConnection();
  b.addEventListener('track', (e) => {
    const heard = new MediaStream([e.track]);
    const audio = new Audio();
    audio.srcObject = heard;
    audio.play().catch(() => {});
    window.loopbackAudio = audio;
    softswitchPage.listen(heard);
  });
  await b.setRemoteDescription({type: 'offer', sdp: a.sdp});
  await b.setLocalDescription(await b.createAnswer());
  await new Promise((ok) => b.iceGatheringState === 'complete' ? ok() :
    b.addEventListener('icegatheringstatechange', () => b.iceGatheringState === 'complete' && ok()));
  await a.pc.setRemoteDescription({type: 'answer', sdp: Softswitch.filterCandidates(b.localDescription.sdp,
    'loopback')});
  window.loopbackPair = [a.pc, b];
  done({offer: a.sdp, gathered: a.pc.localDescription.sdp});
})().catch((err) => done({error: String(err)}));
"""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(STATIC_DIR))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def phone() -> Iterator[BrowserPhone]:
    with BrowserPhone(tone_hz=TONE_HZ) as browser:
        yield browser


def test_page_loads_with_the_library(site: str, phone: BrowserPhone) -> None:
    phone.open(site + "?token=abc.def.ghi")
    state = phone.state()
    assert state["registered"] is False and state["events"] == [] and state["errors"] == [], state
    api = phone.run("""
        const d = new Softswitch.Device('t', {wsUrl: 'ws://127.0.0.1:9/none'});
        const c = new Softswitch.Call(d, {direction: 'INCOMING', callSid: 'CA1', params: {x: '1'}});
        return {device: ['register', 'connect', 'on', 'destroy'].filter((m) => typeof d[m] === 'function'),
                call: ['accept', 'reject', 'sendDigits', 'mute', 'isMuted', 'disconnect', 'on', 'remoteStream']
                  .filter((m) => typeof c[m] === 'function'),
                params: c.parameters, custom: [...c.customParameters], token: document.getElementById('token').value,
                phone: typeof window.softswitchPhone};""")
    assert api["device"] == ["register", "connect", "on", "destroy"]
    assert len(api["call"]) == 8 and api["params"]["CallSid"] == "CA1" and api["custom"] == [["x", "1"]]
    assert api["token"] == "abc.def.ghi" and api["phone"] == "undefined"  # set once a device is made
    severe = [e for e in phone.browser_log() if e.get("level") == "SEVERE"]
    assert not severe, severe


@pytest.mark.parametrize(("codec", "mime"), [("pcmu", "PCMU"), ("opus", "opus")])
def test_loopback_pair_carries_the_tone(site: str, phone: BrowserPhone, codec: str, mime: str) -> None:
    phone.open(site)
    result: dict[str, Any] = phone.web.execute_async_script(LOOPBACK, codec)
    assert "error" not in result, result
    offer = result["offer"]
    first = re.search(r"^m=audio \d+ \S+ (\d+)", offer, re.M)
    assert first, offer
    assert re.search(rf"^a=rtpmap:{first.group(1)} {mime}/", offer, re.M | re.I), offer  # preferred codec first
    candidates = re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) ", offer, re.M)
    assert candidates and set(candidates) <= {"127.0.0.1", "::1"}, result["gathered"]
    heard = phone.wait_heard(TONE_HZ, tolerance=15, timeout=10, min_level=0.05)  # times out if never this loud
    assert heard["level"] > 0.05, heard
    print("gathered:", re.findall(r"^a=candidate:.*$", result["gathered"], re.M), "heard:", heard)
    phone.run("for (const pc of window.loopbackPair) pc.close()")
