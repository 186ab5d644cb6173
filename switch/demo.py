"""`softswitch demo`: one whole call on embedded defaults, printed as a timeline.

The switch starts on a temporary data dir with one worker; a tiny status-callback app listens on
127.0.0.1; sipp (Debian's sip-tester) plays the far end and answers.  The official `twilio` client places
a call with all four StatusCallbackEvents; after a few seconds of talk it hangs the call up through the
REST API.  Every callback is printed as it arrives, then the SIP history and a summary of the call.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from aiohttp import web

from switch.app import start_switch
from switch.config import Config
from switch.signature import compute_signature

TALK_SECONDS = 2.0


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Timeline:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, what: str, text: str) -> None:
        print(f"{(time.monotonic() - self.t0) * 1000:8.0f} ms  {what:<9} {text}", flush=True)


async def _demo(timeline: Timeline) -> int:
    if shutil.which("sipp") is None:
        print("softswitch demo: sipp is missing; run `make demo` (it installs sip-tester) or "
              "`apt-get install sip-tester`")
        return 1
    data = Path(tempfile.mkdtemp(prefix="softswitch-demo-"))
    http_port, sip_port, uas_port, app_port = (_free_port(), _free_port(socket.SOCK_DGRAM),
                                               _free_port(socket.SOCK_DGRAM), _free_port())
    config = Config(http_port=http_port, sip_port=sip_port, data_dir=data, workers=1)
    switch = await start_switch(config)
    creds = switch.credentials
    timeline.say("switch", f"HTTP {switch.base_url}, SIP 127.0.0.1:{sip_port}, account {creds.account_sid}")
    done = asyncio.Event()
    statuses: list[str] = []

    async def status_callback(request: web.Request) -> web.Response:
        form = await request.post()
        params = [(k, str(v)) for k, v in form.items()]
        url = f"http://127.0.0.1:{app_port}/status"
        valid = compute_signature(creds.auth_token, url, params) == request.headers.get("X-Twilio-Signature")
        status = str(form.get("CallStatus"))
        statuses.append(status)
        seq, code, sid = (str(form.get(k)) for k in ("SequenceNumber", "SipResponseCode", "CallSid"))
        timeline.say("callback", f"{status:<12} seq={seq} sip={code} call={sid} "
                                 f"signature={'valid' if valid else 'INVALID'}")
        if status in ("completed", "busy", "no-answer", "failed", "canceled"):
            done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/status", status_callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", app_port).start()
    timeline.say("app", f"status-callback app on http://127.0.0.1:{app_port}/status")
    uas = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-m", "1", "-nostdin",
         "-timeout", "30s", "-timeout_error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timeline.say("far end", f"sipp UAS answering on sip:bob@127.0.0.1:{uas_port}")
    try:
        from twilio.rest import Client

        client = Client(creds.account_sid, creds.auth_token)
        client.api.base_url = switch.base_url
        call = await asyncio.to_thread(
            client.calls.create, to=f"sip:bob@127.0.0.1:{uas_port}", from_="+15550100",
            twiml="<Response><Pause length='60'/></Response>",
            status_callback=f"http://127.0.0.1:{app_port}/status",
            status_callback_event=["initiated", "ringing", "answered", "completed"])
        timeline.say("REST", f"POST Calls.json -> 201 {call.sid} status={call.status}")
        while "in-progress" not in statuses and not done.is_set():
            await asyncio.sleep(0.05)
        await asyncio.sleep(TALK_SECONDS)
        await asyncio.to_thread(client.calls(call.sid).update, status="completed")
        timeline.say("REST", f"POST Calls/{call.sid}.json Status=completed (hang up)")
        await asyncio.wait_for(done.wait(), 10)
        fetched = await asyncio.to_thread(client.calls(call.sid).fetch)
        print("\nSIP and status history of the call:")
        for event in switch.store.events(call.sid):
            print(f"  {event.at.strftime('%H:%M:%S.%f')[:-3]}  {event.kind:<6} {event.detail}")
        print(f"\n  {'sid':<34}  {'parent':<8}  {'status':<10}  duration")
        print(f"  {fetched.sid:<34}  {'-':<8}  {fetched.status:<10}  {fetched.duration} s")
        expected = ["initiated", "ringing", "in-progress", "completed"]
        if statuses != expected:
            print(f"softswitch demo: FAILED: callbacks {statuses}, expected {expected}")
            return 1
        return 0
    finally:
        uas.terminate()
        uas.wait(5)
        await switch.stop()
        await runner.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def run_demo() -> int:
    # The timeline is the demo's output; library chatter (twilio's request dumps, INFO logs) would bury it.
    logging.getLogger().setLevel(logging.WARNING)
    timeline = Timeline()
    try:
        return asyncio.run(asyncio.wait_for(_demo(timeline), 30))
    except TimeoutError:
        print("softswitch demo: FAILED: did not finish in 30 s")
        return 1
