"""The demo's timeline: events from every lane in time order, and the SIP lane read from the switch's store."""

from __future__ import annotations

import heapq
import itertools
import re
import time
import xml.etree.ElementTree as ET

from switch.app import Switch
from switch.core.store import CallEvent
from switch.tools.demo.plot import Mark, Span


def short_sid(sid: str | None) -> str:
    return f"{sid[:10]}.." if sid else "-"


def describe_twiml(document: str) -> str:
    """`<Response><Gather ..><Say>..</Say></Gather><Say/></Response>` -> `Gather(Say), Say`."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError:
        return "(not XML)"

    def one(el: ET.Element) -> str:
        attrs = {k: v for k, v in el.attrib.items() if k in ("loop", "record", "numDigits")}
        inner = ", ".join(one(child) for child in el)
        text = el.tag + "".join(f" {k}={v}" for k, v in attrs.items())
        return f"{text}({inner})" if inner else text

    return ", ".join(one(child) for child in root) or "(empty)"


class Timeline:
    """Events with their times: printed in time order a moment after they happen, kept for the picture."""

    HOLD = 0.2  # seconds a line waits, so that events seen a little late still print in order

    def __init__(self) -> None:
        self.t0 = time.time()
        self.marks: list[Mark] = []
        self.spans: list[Span] = []
        self._pending: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return time.time() - self.t0

    def add(self, lane: str, text: str, label: str | None = None, leg: str = "", at: float | None = None) -> None:
        """An event in `lane` (at wall-clock time `at`, default now); `label` is its short name in the picture."""
        t = (time.time() if at is None else at) - self.t0
        if label is not None:
            self.marks.append(Mark(t, lane, label, leg))
        line = f"{t * 1000:7.0f} ms  {lane:<8}  {leg or ' '}  {text}"
        heapq.heappush(self._pending, (t, next(self._seq), line))

    def span(self, lane: str, start: float | None, end: float | None, label: str, leg: str = "") -> None:
        if start is not None and end is not None and end > start:
            self.spans.append(Span(start - self.t0, end - self.t0, lane, label, leg))

    def flush(self, everything: bool = False) -> None:
        limit = float("inf") if everything else self.now() - self.HOLD
        while self._pending and self._pending[0][0] <= limit:
            print(heapq.heappop(self._pending)[2], flush=True)


class SipWatcher:
    """Polls the switch's call events (`store.events`) of every call it has seen live, as timeline lines."""

    def __init__(self, switch: Switch, timeline: Timeline) -> None:
        self.switch = switch
        self.timeline = timeline
        self.legs: dict[str, str] = {}  # call SID -> "A" (the REST call to phone A) or "B" (the <Dial> leg)
        self._seen: dict[str, int] = {}
        self._bye_sent: set[str] = set()

    def poll(self) -> None:
        for sid, call in list(self.switch.calls.live.items()):
            if sid not in self.legs:
                self.legs[sid] = "B" if call.parent_call_sid else "A"
                self._seen[sid] = 0
        for sid in self.legs:
            events = self.switch.store.events(sid)
            for event in events[self._seen[sid]:]:
                self._show(sid, event)
            self._seen[sid] = len(events)

    def _show(self, sid: str, event: CallEvent) -> None:
        leg = self.legs[sid]
        at = event.at.timestamp()
        add = self.timeline.add
        detail = event.detail
        if event.kind == "sip":
            if detail == "INVITE sent":
                add("SIP", f"INVITE        switch -> phone {leg}", f"INVITE →{leg}", leg, at)
            elif detail.startswith("hangup requested"):
                self._bye_sent.add(sid)
                add("SIP", f"BYE           switch -> phone {leg}  (the switch hangs up)", f"BYE →{leg}", leg, at)
            elif detail.startswith("ended"):
                code = event.sip_code or 0
                if sid in self._bye_sent:
                    add("SIP", f"{code} OK        phone {leg} -> switch  (to the BYE: leg over)",
                        f"{code} ←{leg}", leg, at)
                else:
                    add("SIP", f"BYE           phone {leg} -> switch  (phone {leg} hangs up; the switch answers 200)",
                        f"BYE ←{leg}", leg, at)
            elif event.sip_code is not None:
                note = "  (answered; the switch ACKs)" if event.sip_code == 200 else ""
                add("SIP", f"{detail:<13} phone {leg} -> switch{note}", f"{event.sip_code} ←{leg}", leg, at)
            else:
                add("SIP", detail, detail, leg, at)
        elif event.kind == "recording":
            rec_sid, _, rest = detail.partition(" ")
            add("media", f"recording {short_sid(rec_sid)} {rest}", f"recording {rest.split(' (')[0]}", "", at)
        elif event.kind == "twiml":
            local = re.sub(r"https?://[^/\s]+", "", detail)  # "redirect to http://127.0.0.1:port/goodbye"
            add("TwiML", f"{local}  (the switch stops the hold music)", f"redirect → {local.split()[-1]}", leg, at)
        elif event.kind == "error":
            add("SIP", f"error: {detail}", "error", leg, at)
