"""Issue 16: `<Dial><Conference>` with real lab phones, each sending its own tone, heard by FFT.

The switch runs 2 media workers, so a room of three has members on both (the pool puts each new call on the
worker with most free legs): every check below also checks the mixing across workers.  Each phone records what
it hears from its answer on; windows are placed by wall-clock times taken while the calls run.  A phone must hear
the others' tones and not its own; the conference's status callbacks come in order with SequenceNumber 1, 2, ...
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pytest
import requests
import soundfile as sf

from media.audio import read_wav
from media.tones import band_energy_ratio, rms, sine
from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess, WebhookSink
from tests.peers.phone import PhoneProcess

RATE = 8000
TONES = (440.0, 700.0, 1100.0)
HOLD_HZ, ANNOUNCE_HZ, WAIT_HZ = 1500.0, 1800.0, 900.0
EVENTS = "start end join leave mute hold modify announcement"


@dataclass
class Member:
    """A phone in a room: its tone, its call, when it answered, and (after its hang-up) what it heard."""

    phone: PhoneProcess
    hz: float
    sid: str = ""
    answered: float = 0.0
    heard: np.ndarray | None = None

    def window(self, start: float, end: float) -> np.ndarray:
        """What it heard between wall-clock times `start` and `end`."""
        assert self.heard is not None, "hang up first"
        assert end - start >= 0.5, f"window {start:.2f}-{end:.2f} is too short"
        a, b = int((start - self.answered) * RATE), int((end - self.answered) * RATE)
        assert a >= 0 and b <= len(self.heard), f"window {a}-{b} outside {len(self.heard)} samples"
        return self.heard[a:b]

    def hang_up(self, timeout: float = 10.0) -> None:
        self.phone.command("hangup")
        self.collect(timeout)

    def collect(self, timeout: float = 10.0) -> None:
        """Wait for its call to end (either side) and read its recording."""
        event = self.phone.wait_for("hangup", timeout)
        samples, rate = read_wav(Path(event["recording"]))
        assert rate == RATE
        self.heard = samples


def hears(samples: np.ndarray, present: tuple[float, ...], absent: tuple[float, ...], what: str) -> None:
    """`samples` hold each tone of `present` (a fair share of the energy) and none of `absent`."""
    level = rms(samples)
    shares = {hz: band_energy_ratio(samples, RATE, hz) for hz in (*present, *absent)}
    detail = f"{what}: rms {level:.0f}, shares {({k: round(v, 3) for k, v in shares.items()})}"
    assert level > 300, detail
    for hz in present:
        assert shares[hz] > 0.8 / len(present) / 2, detail
    for hz in absent:
        assert shares[hz] < 0.03, detail
    assert sum(shares[hz] for hz in present) > 0.8, detail


@pytest.fixture(scope="module")
def served(app: WebhookSink) -> dict[str, str]:
    """Tone files and TwiML the rooms use (hold music, an announcement, wait music)."""
    hold, announce, wait = (app.tone(f"/conf-{name}.wav", hz)
                            for name, hz in (("hold", HOLD_HZ), ("announce", ANNOUNCE_HZ), ("wait", WAIT_HZ)))
    return {
        "hold": app.twiml("/conf-hold", f'<Response><Play loop="0">{hold}</Play></Response>'),
        "announce": app.twiml("/conf-announce", f'<Response><Play>{announce}</Play></Response>'),
        "wait": app.twiml("/conf-wait", f'<Response><Play loop="0">{wait}</Play></Response>'),
    }


def conference_twiml(room: str, action: str | None = None, **attrs: str) -> str:
    text = " ".join(f"{key}={quoteattr(value)}" for key, value in {"beep": "false", **attrs}.items())
    dial = f"<Dial action={quoteattr(action)}>" if action else "<Dial>"
    return f"<Response>{dial}<Conference {text}>{room}</Conference></Dial></Response>"


@pytest.fixture
def phones() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def dial_in(switch: SwitchProcess, phones: ExitStack, tmp_path: Path, hz: float, twiml: str) -> Member:
    """A phone with tone `hz`, called by the switch (REST) with `twiml`; returns once it answered."""
    n = len(list(tmp_path.glob("heard-*.wav")))
    phone = phones.enter_context(PhoneProcess(
        ["--answer", "auto", "--tone", str(hz), "--record", str(tmp_path / f"heard-{n}-{int(hz)}.wav")],
        commands=True))
    sid = switch.client().calls.create(to=phone.uri("conf"), from_="+15550123", twiml=twiml).sid
    answered = phone.wait_for("answered", 15)
    return Member(phone, hz, sid, answered["t"])


def conference_events(app: WebhookSink, path: str, count: int) -> list[tuple[str, str, str]]:
    hooks = app.wait_for(lambda hs: len([h for h in hs if h.path == path]) >= count, 15)
    mine = [h for h in hooks if h.path == path]
    assert [int(h.params["SequenceNumber"]) for h in mine] == list(range(1, len(mine) + 1)), mine
    return [(h.params["StatusCallbackEvent"], h.params.get("CallSid", ""), h.params.get("ReasonParticipantLeft")
             or h.params.get("ReasonConferenceEnded", "")) for h in mine]


def test_three_phones_each_hear_the_other_two(switch: SwitchProcess, app: WebhookSink, phones: ExitStack,
                                               tmp_path: Path) -> None:
    hook = app.url("/conf-three")
    twiml = conference_twiml("three", statusCallback=hook, statusCallbackEvent="start end join leave",
                             record="record-from-start", recordingStatusCallback=app.url("/conf-three-rec"))
    members = [dial_in(switch, phones, tmp_path, hz, twiml) for hz in TONES]
    time.sleep(3.0)
    start, end = time.time() - 2.2, time.time() - 0.2
    for member in members:
        member.hang_up()
    for member in members:
        others = tuple(m.hz for m in members if m is not member)
        hears(member.window(start, end), others, (member.hz,), f"the {member.hz:g} Hz phone")
    a, b, c = (m.sid for m in members)
    assert conference_events(app, "/conf-three", 8) == [
        ("participant-join", a, ""), ("conference-start", "", ""), ("participant-join", b, ""),
        ("participant-join", c, ""), ("participant-leave", a, "participant_hung_up"),
        ("participant-leave", b, "participant_hung_up"), ("participant-leave", c, "participant_hung_up"),
        ("conference-end", "", "last-participant-left")]
    conf = switch.client().conferences.list(friendly_name="three")[0]
    assert conf.status == "completed" and conf.reason_conference_ended == "last-participant-left"
    # record="record-from-start": the room's whole mix, one mono recording of the conference
    done = app.wait_for(lambda hs: any(h.path == "/conf-three-rec" for h in hs), 15)
    callback = next(h for h in done if h.path == "/conf-three-rec")
    assert (callback.params["RecordingStatus"], callback.params["ConferenceSid"],
            callback.params["RecordingSource"], callback.params["CallSid"]) == ("completed", conf.sid, "Conference", a)
    recordings = switch.client().conferences(conf.sid).recordings.list()
    assert [r.sid for r in recordings] == [callback.params["RecordingSid"]]
    media = requests.get(callback.params["RecordingUrl"] + ".wav", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
    mix, rate = sf.read(io.BytesIO(media.content), dtype="int16")
    assert rate == RATE and len(mix) > 3 * RATE
    # it starts with the room, when the first phone entered (just after it answered; nothing to trim: it sends)
    first = members[0].answered
    everyone = mix[int((start - first + 0.3) * RATE):int((end - first - 0.3) * RATE)]
    hears(everyone, TONES, (), "the conference recording, all three in the room")


def test_mute_hold_announce_and_kick_over_rest(switch: SwitchProcess, app: WebhookSink, served: dict[str, str],
                                               phones: ExitStack, tmp_path: Path) -> None:
    twiml = conference_twiml("ops", statusCallback=app.url("/conf-ops"), statusCallbackEvent=EVENTS)
    a, b, c = (dial_in(switch, phones, tmp_path, hz, twiml) for hz in TONES)
    client = switch.client()
    conf = client.conferences.list(friendly_name="ops", status="in-progress")[0]
    room = client.conferences(conf.sid)
    marks = {"all": time.time() + 1.0}
    time.sleep(2.0)
    marks["mute"] = time.time()
    assert room.participants(b.sid).update(muted=True).muted is True
    time.sleep(2.0)
    marks["hold"] = time.time()
    assert room.participants(b.sid).update(muted=False).muted is False
    held = room.participants(c.sid).update(hold=True, hold_url=served["hold"], hold_method="POST")
    assert held.hold is True
    time.sleep(2.5)
    marks["unhold"] = time.time()
    room.participants(c.sid).update(hold=False)
    time.sleep(2.0)
    marks["announce"] = time.time()
    room.update(announce_url=served["announce"])
    time.sleep(1.5)
    marks["kick"] = time.time()
    assert {p.call_sid for p in room.participants.list()} == {a.sid, b.sid, c.sid}
    assert room.participants(b.sid).delete() is True
    b.collect()  # the kicked call goes on after its <Dial>: nothing more, so it ends
    time.sleep(1.5)
    marks["end"] = time.time()
    a.hang_up()
    c.hang_up()

    hears(a.window(marks["all"], marks["mute"] - 0.2), (TONES[1], TONES[2]), (TONES[0],), "A before the mute")
    hears(a.window(marks["mute"] + 0.5, marks["hold"] - 0.2), (TONES[2],), (TONES[0], TONES[1]), "A, B muted")
    hears(c.window(marks["mute"] + 0.5, marks["hold"] - 0.2), (TONES[0],), (TONES[1], TONES[2]), "C, B muted")
    hears(b.window(marks["mute"] + 0.5, marks["hold"] - 0.2), (TONES[0], TONES[2]), (TONES[1],), "B muted hears")
    hears(c.window(marks["hold"] + 1.0, marks["unhold"] - 0.2), (HOLD_HZ,), TONES, "C on hold")
    hears(a.window(marks["hold"] + 0.5, marks["unhold"] - 0.2), (TONES[1],), (TONES[0], TONES[2], HOLD_HZ),
          "A while C is held")
    hears(a.window(marks["unhold"] + 0.5, marks["announce"] - 0.2), (TONES[1], TONES[2]), (TONES[0],),
          "A after the unhold")
    announced = a.window(marks["announce"] + 0.2, marks["kick"] - 0.2)
    assert band_energy_ratio(announced, RATE, ANNOUNCE_HZ) > 0.15, "A hears the announcement"
    hears(a.window(marks["kick"] + 0.8, marks["end"] - 0.2), (TONES[2],), (TONES[0], TONES[1]), "A after the kick")

    assert [(kind, sid) for kind, sid, _ in conference_events(app, "/conf-ops", 13)] == [
        ("participant-join", a.sid), ("conference-start", ""), ("participant-join", b.sid),
        ("participant-join", c.sid), ("participant-mute", b.sid), ("participant-unmute", b.sid),
        ("participant-hold", c.sid), ("participant-unhold", c.sid), ("announcement-end", ""),
        ("participant-leave", b.sid), ("participant-leave", a.sid), ("participant-leave", c.sid),
        ("conference-end", "")]
    kicked = next(h for h in app.for_path("/conf-ops") if h.params["StatusCallbackEvent"] == "participant-leave")
    assert kicked.params["ReasonParticipantLeft"] == "participant_kicked"


def test_waiters_hear_wait_music_until_the_moderator_and_leave_with_it(
        switch: SwitchProcess, app: WebhookSink, served: dict[str, str], phones: ExitStack, tmp_path: Path) -> None:
    hook = app.url("/conf-mod")
    after = app.twiml("/conf-mod-after", "<Response><Hangup/></Response>")
    waiter = dial_in(switch, phones, tmp_path, TONES[0], conference_twiml(
        "moderated", action=after, startConferenceOnEnter="false", waitUrl=served["wait"], statusCallback=hook,
        statusCallbackEvent="start end join leave"))
    time.sleep(2.5)
    arrive = time.time()
    moderator = dial_in(switch, phones, tmp_path, TONES[1], conference_twiml(
        "moderated", endConferenceOnExit="true", participantLabel="moderator"))
    time.sleep(2.5)
    leave = time.time()
    moderator.hang_up()
    waiter.collect()  # the room ended with the moderator: the waiter's <Dial> is over, and so is its call
    hears(waiter.window(waiter.answered + 0.7, arrive - 0.2), (WAIT_HZ,), (TONES[1],), "the waiter, waiting")
    hears(waiter.window(moderator.answered + 0.8, leave - 0.2), (TONES[1],), (WAIT_HZ, TONES[0]),
          "the waiter, in the room")
    events = conference_events(app, "/conf-mod", 6)
    assert events == [("participant-join", waiter.sid, ""), ("participant-join", moderator.sid, ""),
                      ("conference-start", "", ""),
                      ("participant-leave", moderator.sid, "participant_hung_up"),
                      ("conference-end", "", "participant-with-end-conference-on-exit-left"),
                      ("participant-leave", waiter.sid, "conference_ended")]
    ended = next(h for h in app.for_path("/conf-mod") if h.params["StatusCallbackEvent"] == "conference-end")
    assert ended.params["CallSidEndingConference"] == moderator.sid
    assert ended.params["ParticipantLabelEndingConference"] == "moderator"
    # the waiter's <Dial action>: told how its time in the room ended, then its <Hangup/> ends the call
    told = app.wait_for(lambda hs: any(h.path == "/conf-mod-after" for h in hs), 10)
    action = next(h for h in told if h.path == "/conf-mod-after")
    assert (action.params["CallSid"], action.params["DialCallStatus"], action.params["ConferenceSid"]) == (
        waiter.sid, "completed", ended.params["ConferenceSid"])
    assert 4 <= int(action.params["DialCallDuration"]) <= 8


def test_rest_participants_dial_into_a_room(switch: SwitchProcess, phones: ExitStack, tmp_path: Path) -> None:
    client = switch.client()
    members = []
    for hz in TONES[:2]:
        phone = phones.enter_context(PhoneProcess(
            ["--answer", "auto", "--tone", str(hz), "--record", str(tmp_path / f"dialed-{int(hz)}.wav")],
            commands=True))
        created = client.conferences("dialed").participants.create(from_="+15550123", to=phone.uri("conf"),
                                                                   beep="false", label=f"p{int(hz)}")
        assert created.status in ("queued", "ringing") and created.label == f"p{int(hz)}"
        answered = phone.wait_for("answered", 15)
        members.append(Member(phone, hz, created.call_sid, answered["t"]))
    conf_sid = client.conferences.list(friendly_name="dialed", status="in-progress")[0].sid
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(client.conferences(conf_sid).participants.list()) < 2:
        time.sleep(0.1)
    listed = {p.label: p.status for p in client.conferences(conf_sid).participants.list()}
    assert listed == {"p440": "connected", "p700": "connected"}
    time.sleep(2.5)
    start, end = time.time() - 2.0, time.time() - 0.2
    for member in members:
        member.hang_up()
    hears(members[0].window(start, end), (TONES[1],), (TONES[0],), "the first dialed phone")
    hears(members[1].window(start, end), (TONES[0],), (TONES[1],), "the second dialed phone")


def test_a_coach_is_heard_only_by_the_participant_it_coaches(switch: SwitchProcess, app: WebhookSink,
                                                             phones: ExitStack, tmp_path: Path) -> None:
    """A supervisor joins with coach=<the agent's CallSid>: it hears the agent and the customer, the agent hears
    both, the customer hears only the agent.  Then coaching is turned off over REST: everyone hears everyone."""
    agent = dial_in(switch, phones, tmp_path, TONES[0], conference_twiml("coached"))
    customer = dial_in(switch, phones, tmp_path, TONES[1], conference_twiml("coached"))
    coach = dial_in(switch, phones, tmp_path, TONES[2], conference_twiml("coached", coach=agent.sid))
    time.sleep(2.5)
    switched = time.time()
    room = switch.client().conferences(switch.client().conferences.list(friendly_name="coached")[0].sid)
    assert room.participants(coach.sid).fetch().coaching is True
    assert room.participants(coach.sid).update(coaching=False).coaching is False
    time.sleep(2.0)
    end = time.time()
    for member in (agent, customer, coach):
        member.hang_up()
    start = coach.answered + 0.8
    hears(agent.window(start, switched - 0.2), (TONES[1], TONES[2]), (TONES[0],), "the agent, coached")
    hears(customer.window(start, switched - 0.2), (TONES[0],), (TONES[1], TONES[2]), "the customer")
    hears(coach.window(start, switched - 0.2), (TONES[0], TONES[1]), (TONES[2],), "the coach")
    hears(customer.window(switched + 0.5, end - 0.2), (TONES[0], TONES[2]), (TONES[1],), "the customer, after")


def silent_phone(switch: SwitchProcess, phones: ExitStack, tmp_path: Path, name: str, twiml: str,
                 play: Path | None = None) -> Member:
    """A phone that sends silence (or `play`, looped), called into a room."""
    args = ["--answer", "auto", "--record", str(tmp_path / f"{name}.wav")]
    phone = phones.enter_context(PhoneProcess([*args, "--play", str(play)] if play else args, commands=True))
    sid = switch.client().calls.create(to=phone.uri("conf"), from_="+15550123", twiml=twiml).sid
    return Member(phone, 0.0, sid, phone.wait_for("answered", 15)["t"])


def test_beeps_a_participant_announcement_and_speaker_events(switch: SwitchProcess, app: WebhookSink,
                                                             served: dict[str, str], phones: ExitStack,
                                                             tmp_path: Path) -> None:
    """beep="true": the room hears a beep (1 kHz) when someone enters and leaves.  An announcement to one
    participant (its AnnounceUrl) reaches it alone.  A phone that talks in bursts (1 s of tone, 1.5 s quiet) is
    reported speaking and silent in turn (statusCallbackEvent="speaker")."""
    pattern = tmp_path / "bursts.wav"
    sf.write(pattern, np.concatenate([sine(TONES[1], 1.0, rate=RATE), np.zeros(int(1.5 * RATE), np.int16)]),
             RATE, subtype="PCM_16")
    hook = app.url("/conf-speaker")
    first = silent_phone(switch, phones, tmp_path, "first", conference_twiml("beeps", beep="true"))
    time.sleep(1.0)
    entered = time.time()
    second = silent_phone(switch, phones, tmp_path, "second", conference_twiml(
        "beeps", beep="true", statusCallback=hook, statusCallbackEvent="speaker announcement"), play=pattern)
    time.sleep(1.5)
    announce = time.time()
    room = switch.client().conferences(switch.client().conferences.list(friendly_name="beeps")[0].sid)
    room.participants(first.sid).update(announce_url=served["announce"])
    time.sleep(5.0)
    left = time.time()
    second.hang_up()
    time.sleep(1.5)
    end = time.time()
    first.hang_up()
    beep = first.window(entered, entered + 1.0)
    # the second phone's first burst (700 Hz) starts with the beep: the 1 kHz beep is a good share of it
    assert band_energy_ratio(beep, RATE, 1000.0) > 0.25 and rms(beep) > 300, "the beep on entering"
    bye = first.window(left, end - 0.2)
    assert band_energy_ratio(bye, RATE, 1000.0) > 0.5 and rms(bye) > 100, "the beep on leaving"
    assert band_energy_ratio(first.window(announce, announce + 1.2), RATE, ANNOUNCE_HZ) > 0.3, "announced to first"
    assert band_energy_ratio(second.window(announce, announce + 1.2), RATE, ANNOUNCE_HZ) < 0.05, "not to second"
    events = [(kind, sid) for kind, sid, _ in conference_events(app, "/conf-speaker", 5)]
    assert ("announcement-end", first.sid) in events
    talk = [kind for kind, sid in events if sid == second.sid]
    assert talk[:4] == ["participant-speech-start", "participant-speech-stop"] * 2, events
