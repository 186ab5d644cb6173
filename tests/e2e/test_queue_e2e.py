"""Call queues end to end: lab phones called by the switch run `<Enqueue>` documents served by a local app and wait
(what they hear is checked by FFT); an agent phone's `<Dial><Queue>` takes the first caller with audio both ways;
`<Leave>`, a full queue and a caller hanging up while queued, with the waitUrl, Queue url, Enqueue and Dial action
requests checked parameter by parameter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from twilio.twiml.voice_response import Dial, Enqueue, VoiceResponse

from media.audio import read_wav
from media.tones import dominant_frequency, rms
from switch.core.queues import Queues
from switch.core.store import Store
from switch.verbs.wait_loop import HOLD_NOTES
from tests.peers.harness import ACCOUNT_SID, Hook, SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess

WINDOW = 0.25  # seconds of a recording per FFT


@pytest.fixture(scope="module")
def app() -> Iterator[WebhookSink]:
    sink = WebhookSink().start()
    for hz in (400, 1200):
        sink.tone(f"/tone{hz}.wav", float(hz))
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, app: WebhookSink) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("queue"), workers=1)
    store = Store(proc.workdir / "data" / "softswitch.db")  # queues made before start-up: the switch loads them
    queues = Queues(store, ACCOUNT_SID)
    queues.create_queue("tiny", max_size=1)
    queues.create_queue("later")
    store.close()
    proc.start()
    yield proc
    proc.stop()


def _doc(build: object) -> str:
    response = VoiceResponse()
    build(response)  # type: ignore[operator]
    return str(response)


def _enqueue(name: str, after: str | None = None, **attrs: object) -> str:
    response = VoiceResponse()
    response.append(Enqueue(name, **attrs))
    if after:
        response.redirect(after)
    return str(response)


def _agent(name: str, url: str | None = None, **attrs: object) -> str:
    response = VoiceResponse()
    dial = Dial(action="/agent-dialed", **attrs)
    dial.queue(name, **({"url": url} if url else {}))
    response.append(dial)
    return str(response)


def _place(switch: SwitchProcess, app: WebhookSink, phone: PhoneProcess, path: str) -> str:
    return str(switch.client().calls.create(to=phone.uri("q"), from_="+15550199", url=app.url(path)).sid)


def _hook(app: WebhookSink, path: str, sid: str, timeout: float = 20, **want: str) -> Hook:
    """The first request to `path` about call `sid` whose parameters include `want`."""
    def match(h: Hook) -> bool:
        return h.path == path and h.params.get("CallSid") == sid and all(h.params.get(k) == v
                                                                         for k, v in want.items())

    app.wait_for(lambda hs: any(match(h) for h in hs), timeout)
    return next(h for h in app.for_path(path) if match(h))


def _heard(path: Path) -> list[float]:
    """The dominant frequency of each audible window of a recording."""
    samples, rate = read_wav(path)
    step = int(WINDOW * rate)
    out = []
    for start in range(0, len(samples) - step + 1, step):
        part = samples[start:start + step]
        if rms(part) > 500:
            out.append(dominant_frequency(part, rate))
    return out


def _has(freqs: list[float], hz: float, windows: int = 2) -> bool:
    return sum(1 for f in freqs if abs(f - hz) < 12) >= windows


def test_two_wait_an_agent_takes_the_first_with_audio_both_ways(switch: SwitchProcess, app: WebhookSink,
                                                               tmp_path: Path) -> None:
    app.twiml("/enqueue-support", _enqueue("support", wait_url="/wait-tone", action="/enqueued"))
    app.twiml("/wait-tone", _doc(lambda r: r.play("/tone1200.wav")))
    app.twiml("/enqueued", _doc(lambda r: r.hangup()))
    app.twiml("/about", _doc(lambda r: r.play("/tone400.wav")))
    app.twiml("/agent-support", _agent("support", url="/about", timeout=20))
    app.twiml("/agent-dialed", _doc(lambda r: r.hangup()))
    a_rec, b_rec, agent_rec = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "agent.wav"
    with PhoneProcess(["--tone", "440", "--record", str(a_rec)]) as a, \
         PhoneProcess(["--tone", "500", "--record", str(b_rec)]) as b, \
         PhoneProcess(["--tone", "1000", "--record", str(agent_rec), "--hangup-after", "5"]) as agent:
        sid_a = _place(switch, app, a, "/enqueue-support")
        first = _hook(app, "/wait-tone", sid_a, QueuePosition="1")
        sid_b = _place(switch, app, b, "/enqueue-support")
        second = _hook(app, "/wait-tone", sid_b, QueuePosition="2", CurrentQueueSize="2")
        _hook(app, "/wait-tone", sid_a, CurrentQueueSize="2")  # the first's next round sees the second
        agent_sid = _place(switch, app, agent, "/agent-support")
        about = _hook(app, "/about", sid_a)
        enqueued = _hook(app, "/enqueued", sid_a, timeout=25)
        dialed = _hook(app, "/agent-dialed", agent_sid)
        later = _hook(app, "/wait-tone", sid_b, QueuePosition="1", CurrentQueueSize="1")
        switch.client().calls(sid_b).update(status="completed")
        b_left = _hook(app, "/enqueued", sid_b)
        a.wait_for("hangup", timeout=10)
    queue_sid = first.params["QueueSid"]
    assert queue_sid.startswith("QU") and second.params["QueueSid"] == queue_sid
    assert first.params["MaxQueueSize"] == "1000" and first.params["CurrentQueueSize"] == "1"
    assert {"QueueTime", "AvgQueueTime"} <= set(first.params) and WebhookSink.valid(first)
    assert (about.params["QueueSid"], about.params["DequeingCallSid"]) == (queue_sid, agent_sid)
    assert enqueued.params["QueueResult"] == "bridged" and enqueued.params["QueueSid"] == queue_sid
    assert int(enqueued.params["QueueTime"]) >= 1
    assert (dialed.params["DialCallStatus"], dialed.params["DialCallSid"]) == ("completed", sid_a)
    assert dialed.params["QueueSid"] == queue_sid and 1 <= int(dialed.params["DialCallDuration"]) <= 5
    assert later.params["QueueSid"] == queue_sid
    assert b_left.params["QueueResult"] == "hangup"
    heard_a, heard_agent, heard_b = _heard(a_rec), _heard(agent_rec), _heard(b_rec)
    assert _has(heard_a, 1200) and _has(heard_b, 1200)  # the wait music
    assert _has(heard_a, 400)  # the Queue url's announcement
    assert _has(heard_a, 1000, windows=4)  # the agent
    assert _has(heard_agent, 440, windows=4)  # and the agent heard the first caller
    assert not _has(heard_agent, 500, windows=1) and not _has(heard_b, 1000, windows=1)


def test_default_hold_music_and_hanging_up_while_queued(switch: SwitchProcess, app: WebhookSink,
                                                       tmp_path: Path) -> None:
    app.twiml("/enqueue-music", _enqueue("music", action="/music-left"))
    app.twiml("/agent-music", _agent("music", timeout=2))
    rec = tmp_path / "music.wav"
    with PhoneProcess(["--record", str(rec), "--hangup-after", "5"]) as caller:
        sid = _place(switch, app, caller, "/enqueue-music")
        left = _hook(app, "/music-left", sid)
    assert left.params["QueueResult"] == "hangup" and left.params["QueueSid"].startswith("QU")
    assert 3 <= int(left.params["QueueTime"]) <= 6
    heard = _heard(rec)
    notes = {hz for hz, _ in HOLD_NOTES if _has(heard, hz, windows=1)}
    assert len(notes) >= 2, heard  # the default hold music's chimes
    with PhoneProcess([]) as agent:  # the caller left the queue: an agent finds it empty and gives up
        agent_sid = _place(switch, app, agent, "/agent-music")
        dialed = _hook(app, "/agent-dialed", agent_sid)
    assert dialed.params["DialCallStatus"] == "no-answer" and "DialCallSid" not in dialed.params


def test_leave_ends_the_wait(switch: SwitchProcess, app: WebhookSink) -> None:
    app.twiml("/wait-leave", _doc(lambda r: (r.play("/tone1200.wav"), r.leave())))
    app.twiml("/enqueue-leave-action", _enqueue("leavers", wait_url="/wait-leave", action="/left"))
    app.twiml("/enqueue-leave-on", _enqueue("leavers", after="/after-leave", wait_url="/wait-leave"))
    app.twiml("/left", _doc(lambda r: r.hangup()))
    app.twiml("/after-leave", _doc(lambda r: r.hangup()))
    with PhoneProcess([]) as one, PhoneProcess([]) as two:
        sid_one = _place(switch, app, one, "/enqueue-leave-action")
        sid_two = _place(switch, app, two, "/enqueue-leave-on")
        left = _hook(app, "/left", sid_one)
        _hook(app, "/after-leave", sid_two)  # no action: the call went on after <Enqueue>
    assert left.params["QueueResult"] == "leave" and left.params["QueueSid"].startswith("QU")
    assert int(left.params["QueueTime"]) >= 0
    assert not [h for h in app.for_path("/wait-leave") if h.params["CallSid"] == sid_one][1:]  # fetched once


def test_a_full_queue_refuses_the_next_caller(switch: SwitchProcess, app: WebhookSink) -> None:
    app.twiml("/enqueue-tiny", _enqueue("tiny", action="/tiny-result", wait_url="/wait-tiny"))
    app.twiml("/wait-tiny", _doc(lambda r: r.pause(length=1)))
    app.twiml("/tiny-result", _doc(lambda r: r.hangup()))
    with PhoneProcess([]) as first, PhoneProcess([]) as second:
        sid_first = _place(switch, app, first, "/enqueue-tiny")
        waiting = _hook(app, "/wait-tiny", sid_first)
        shown = _queue_named(switch, "tiny")
        sid_second = _place(switch, app, second, "/enqueue-tiny")
        full = _hook(app, "/tiny-result", sid_second)
        switch.client().calls(sid_first).update(status="completed")
        gone = _hook(app, "/tiny-result", sid_first)
    assert (waiting.params["MaxQueueSize"], waiting.params["CurrentQueueSize"]) == ("1", "1")
    assert full.params["QueueResult"] == "queue-full" and "QueueSid" not in full.params
    assert gone.params["QueueResult"] == "hangup" and gone.params["QueueSid"] == waiting.params["QueueSid"]
    if shown is not None:  # the Queues API, when this switch serves it
        assert (shown["max_size"], shown["current_size"]) == (1, 1)


def test_an_agent_waits_for_the_next_caller(switch: SwitchProcess, app: WebhookSink, tmp_path: Path) -> None:
    app.twiml("/agent-later", _agent("later", timeout=15))
    app.twiml("/enqueue-later", _enqueue("later", action="/later-result"))
    app.twiml("/later-result", _doc(lambda r: r.hangup()))
    rec = tmp_path / "caller.wav"
    with PhoneProcess(["--tone", "1000", "--hangup-after", "4"]) as agent, \
         PhoneProcess(["--tone", "440", "--record", str(rec)]) as caller:
        agent_sid = _place(switch, app, agent, "/agent-later")
        _hook(app, "/agent-later", agent_sid)
        sid = _place(switch, app, caller, "/enqueue-later")
        dialed = _hook(app, "/agent-dialed", agent_sid)
        result = _hook(app, "/later-result", sid)
    assert (dialed.params["DialCallStatus"], dialed.params["DialCallSid"]) == ("completed", sid)
    assert result.params["QueueResult"] == "bridged" and int(result.params["QueueTime"]) <= 2
    assert _has(_heard(rec), 1000, windows=4)


def _queue_named(switch: SwitchProcess, name: str) -> dict[str, object] | None:
    """The queue `name` as the Queues API shows it; None when this switch does not serve that API."""
    try:
        body = switch.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Queues.json")
    except Exception:
        return None
    return next((q for q in json.loads(body)["queues"] if q["friendly_name"] == name), None)


def test_caller_and_agent_on_two_workers_meet_in_the_mixer(tmp_path: Path, app: WebhookSink) -> None:
    """Two workers: the caller's and the agent's calls land on different ones (the most free slots), so the bridge
    is a two-member conference of the control-plane mixer."""
    app.twiml("/enqueue-split", _enqueue("split", action="/split-result"))
    app.twiml("/split-result", _doc(lambda r: r.hangup()))
    app.twiml("/agent-split", _agent("split", timeout=15))
    app.twiml("/agent-dialed", _doc(lambda r: r.hangup()))
    proc = SwitchProcess(tmp_path / "split", workers=2)
    proc.workdir.mkdir()
    proc.start()
    caller_rec, agent_rec = tmp_path / "caller.wav", tmp_path / "agent.wav"
    try:
        with PhoneProcess(["--tone", "440", "--record", str(caller_rec)]) as caller, \
             PhoneProcess(["--tone", "1000", "--record", str(agent_rec), "--hangup-after", "5"]) as agent:
            sid = _place(proc, app, caller, "/enqueue-split")
            _hook(app, "/enqueue-split", sid)
            agent_sid = _place(proc, app, agent, "/agent-split")
            dialed = _hook(app, "/agent-dialed", agent_sid, timeout=25)
            result = _hook(app, "/split-result", sid)
    finally:
        proc.stop()
    assert dialed.params["DialCallStatus"] == "completed" and result.params["QueueResult"] == "bridged"
    assert _has(_heard(caller_rec), 1000, windows=4) and _has(_heard(agent_rec), 440, windows=4)
