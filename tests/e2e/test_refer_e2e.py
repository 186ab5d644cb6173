"""SIP REFER and Replaces from real peers (issue 13, section 4), with sipp on every side.

- `<Dial referUrl>`: the dialed party (sipp `uas_refer.xml`) answers, then sends a blind REFER.  The switch
  answers 202 and NOTIFY `100 Trying`, requests referUrl with Twilio's parameters, NOTIFYs `200 OK` (the
  subscription ends), hangs the transferor up, and runs the referUrl's `<Dial>` on the caller: the caller reaches
  the transfer target.  No call the switch does not track is ever placed (the target is reached only by that
  `<Dial>`).
- `<Dial>` without referUrl: the REFER is refused 403, the call gets notification 13802 and goes on.
- An INVITE with `Replaces:` naming a live leg's dialog is refused 403 and the live call goes on.
"""

from __future__ import annotations

from twilio.twiml.voice_response import Dial, VoiceResponse

from tests.peers.harness import SwitchProcess, WebhookSink, wait_until
from tests.peers.sipp_peer import SipMessage, SippPeer

EVENTS = "initiated ringing answered completed"
PARENT_EVENTS = ["initiated", "ringing", "answered", "completed"]


def _dial(app: WebhookSink, uri: str, **attrs: object) -> str:
    response = VoiceResponse()
    dial = Dial(action=app.url("/dialed"), **attrs)
    dial.sip(uri, status_callback=app.url("/child"), status_callback_event=EVENTS)
    response.append(dial)
    return str(response)


def _children(app: WebhookSink, parent: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for hook in app.for_path("/child"):
        if hook.params.get("ParentCallSid") == parent:
            out.setdefault(hook.params["CallSid"], []).append(hook.params["CallStatus"])
    return out


def _notify_bodies(peer: SippPeer) -> list[tuple[str, str]]:
    """(sipfrag, Subscription-State) of every NOTIFY the peer received, in order."""
    got: list[SipMessage] = [m for m in peer.messages(include_retransmissions=False)
                             if m.direction == "received" and m.method == "NOTIFY"]
    return [(m.body.strip(), (m.header("Subscription-State") or "").split(";")[0]) for m in got]


def test_refer_runs_the_refer_url_on_the_caller(switch: SwitchProcess, app: WebhookSink) -> None:
    with (SippPeer("uas_answer.xml", timeout=40, name="caller") as caller,
          SippPeer("uas_answer_bye.xml", timeout=40, variables={"pause_ms": 1500}, name="target") as target):
        target_uri = f"sip:carol@{target.uri_host}"
        with SippPeer("uas_refer.xml", timeout=40, keywords={"refer_to": target_uri}, name="agent") as agent:
            app.twiml("/refer", _dial(app, target_uri))
            app.twiml("/dialed", str(VoiceResponse().say("never heard")))
            call = switch.client().calls.create(
                to=f"sip:alice@{caller.uri_host}", from_="+15550199",
                twiml=_dial(app, f"sip:agent@{agent.uri_host}", refer_url=app.url("/refer")),
                status_callback=app.url("/parent"), status_callback_event=PARENT_EVENTS)
            sid = str(call.sid)
            assert agent.wait_sync(20) == 0, agent.describe()
        assert target.wait_sync(20) == 0, target.describe()
        assert caller.wait_sync(20) == 0, caller.describe()  # the caller was hung up when the target left
    parent = app.wait_statuses("/parent", sid, 4, timeout=20)
    assert [h.params["CallStatus"] for h in parent] == ["initiated", "ringing", "in-progress", "completed"]

    # The referUrl: the caller's parameters plus Twilio's ReferTransferTarget and the REFER's headers.
    refer = app.for_path("/refer")
    assert len(refer) == 1
    params = refer[0].params
    assert params["CallSid"] == sid
    assert params["ReferTransferTarget"] == f"<{target_uri}>"
    assert params["SipHeader_Referred-By"] == f"<sip:agent@{agent.uri_host}>"
    assert params["SipHeader_X-Ctx"] == "42"
    assert refer[0].method == "POST" and WebhookSink.valid(refer[0])

    # The transferor: 202, NOTIFY 100 Trying (active), NOTIFY 200 OK (terminated), then BYE.
    assert agent.codes_received() == [202]
    assert agent.methods_received() == ["INVITE", "ACK", "NOTIFY", "NOTIFY", "BYE"]
    assert agent.codes_sent() == [100, 180, 200, 200, 200, 200]
    assert _notify_bodies(agent) == [("SIP/2.0 100 Trying", "active"), ("SIP/2.0 200 OK", "terminated")]

    # Two children, each with its whole sequence: the agent (let go after the REFER), then the target.
    children = _children(app, sid)
    assert list(children.values()) == [["initiated", "ringing", "in-progress", "completed"]] * 2
    agent_sid, target_sid = list(children)
    # The first <Dial>'s action is told (its answer ignored): the agent's leg completed.
    dialed = [h.params for h in app.for_path("/dialed") if h.params.get("CallSid") == sid]
    assert [(d["DialCallStatus"], d["DialCallSid"]) for d in dialed] == [
        ("completed", agent_sid), ("completed", target_sid)]
    # Order: the referUrl was requested before the agent was let go, and before the target was dialed.
    times = {(h.params["CallSid"], h.params["CallStatus"]): h.received for h in app.for_path("/child")}
    assert refer[0].received < times[(agent_sid, "completed")]
    assert refer[0].received < times[(target_sid, "initiated")]
    assert target.methods_received() == ["INVITE", "ACK"]
    wait_until(lambda: switch.healthz()[1]["in_use"] == 0, what="slots released")


def test_refer_without_refer_url_is_refused_and_the_call_goes_on(switch: SwitchProcess, app: WebhookSink) -> None:
    pids = [w["pid"] for w in switch.healthz()[1]["workers"]]
    with (SippPeer("uas_answer.xml", timeout=30, name="caller") as caller,
          SippPeer("uas_hostile.xml", timeout=30, name="agent") as agent):
        app.twiml("/dialed", str(VoiceResponse()))
        call = switch.client().calls.create(
            to=f"sip:alice@{caller.uri_host}", from_="+15550199", twiml=_dial(app, f"sip:agent@{agent.uri_host}"),
            status_callback=app.url("/parent"), status_callback_event=PARENT_EVENTS)
        sid = str(call.sid)
        assert agent.wait_sync(20) == 0, agent.describe()  # 488 to the bad re-INVITE, 403 to the REFER, its BYE
        assert caller.wait_sync(20) == 0, caller.describe()
    parent = app.wait_statuses("/parent", sid, 4, timeout=20)
    assert [h.params["CallStatus"] for h in parent] == ["initiated", "ringing", "in-progress", "completed"]
    assert agent.codes_received() == [488, 403, 200]
    children = _children(app, sid)
    assert list(children.values()) == [["initiated", "ringing", "in-progress", "completed"]]
    dialed = [h.params for h in app.for_path("/dialed") if h.params.get("CallSid") == sid]
    assert [d["DialCallStatus"] for d in dialed] == ["completed"]
    notes = switch.client().calls(sid).notifications.list()
    assert [n.error_code for n in notes] == ["13802"]
    assert [w["pid"] for w in switch.healthz()[1]["workers"]] == pids
    wait_until(lambda: switch.healthz()[1]["in_use"] == 0, what="slots released")


def _tag(header: str) -> str:
    return header.split(";tag=", 1)[1].split(";", 1)[0].strip()


def test_invite_with_replaces_of_a_live_leg_is_refused_and_the_call_goes_on(switch: SwitchProcess,
                                                                             app: WebhookSink) -> None:
    pids = [w["pid"] for w in switch.healthz()[1]["workers"]]
    with SippPeer("uas_answer.xml", timeout=30, name="callee") as callee:
        call = switch.client().calls.create(
            to=f"sip:bob@{callee.uri_host}", from_="+15550199", twiml="<Response><Pause length='3'/></Response>",
            status_callback=app.url("/replaced"), status_callback_event=PARENT_EVENTS)
        sid = str(call.sid)
        app.wait_statuses("/replaced", sid, 3, timeout=15)  # in-progress: the dialog is confirmed
        invite = callee.first("received", "INVITE")
        ok = next(m for m in callee.messages() if m.direction == "sent" and m.status_code == 200)
        assert invite is not None
        # Seen from the switch: its own tag is the local one (to-tag), the callee's the remote one (from-tag).
        replaces = (f"{invite.call_id};to-tag={_tag(invite.header('From') or '')};"
                    f"from-tag={_tag(ok.header('To') or '')}")
        with SippPeer("uac_replaces.xml", remote=switch.sip_uri_host, service="bob", timeout=15,
                      keywords={"replaces": replaces}, name="replacer") as replacer:
            assert replacer.wait_sync(10) == 0, replacer.describe()
        assert replacer.codes_received() == [100, 403] or replacer.codes_received() == [403]
        assert callee.wait_sync(15) == 0, callee.describe()  # the live call ended by our BYE after the Pause
    hooks = app.wait_statuses("/replaced", sid, 4, timeout=15)
    assert [h.params["CallStatus"] for h in hooks] == ["initiated", "ringing", "in-progress", "completed"]
    assert int(hooks[-1].params["CallDuration"]) >= 3
    assert callee.methods_received() == ["INVITE", "ACK", "BYE"]
    assert [w["pid"] for w in switch.healthz()[1]["workers"]] == pids
    wait_until(lambda: switch.healthz()[1]["in_use"] == 0, what="slots released")
