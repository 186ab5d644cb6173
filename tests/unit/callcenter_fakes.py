"""In-memory fakes of `ConferenceService` and `QueueService` (and of the recording lookup), and a harness that
serves the Twilio dialect's Conferences and Queues routes over them to the official `twilio` client.

The aiohttp test server runs on the test's event loop; the client is synchronous, so tests call it through
`Harness.call` (a worker thread), and can look at the fakes directly between requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import encode_basic_auth, web
from aiohttp.test_utils import TestClient, TestServer
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from switch.core.conference_model import (
    DEFAULT_MAX_QUEUE,
    Conference,
    ConferenceFilter,
    ConferenceStatus,
    Member,
    Participant,
    ParticipantCreate,
    ParticipantStatus,
    ParticipantUpdate,
    Queue,
)
from switch.core.errors import Conflict, InvalidArgument, NotFound
from switch.core.recording_model import Recording, RecordingStatus
from switch.dialects.errors import error_middleware
from switch.dialects.twilio.conferences import add_twilio_conference_routes
from switch.dialects.twilio.queues import add_twilio_queue_routes

ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "callcenter-token"
BASE = "https://pbx.example.com"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
T = TypeVar("T")
_serial = itertools.count(1)


def sid(prefix: str) -> str:
    return f"{prefix}{next(_serial):032x}"


@dataclasses.dataclass(frozen=True)
class Account:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN


class FakeConferences:
    """A `ConferenceService` over dicts; records what the edge asked for."""

    def __init__(self) -> None:
        self.conferences: dict[str, Conference] = {}
        self.participants: dict[str, dict[str, Participant]] = {}
        self.recording_sids: dict[str, list[str]] = {}
        self.created: list[tuple[str, ParticipantCreate]] = []
        self.updates: list[ParticipantUpdate] = []
        self.announced: list[tuple[str, str, str]] = []

    def add_conference(self, name: str, status: ConferenceStatus = ConferenceStatus.IN_PROGRESS,
                       created: dt.datetime = T0) -> Conference:
        conf = Conference(sid("CF"), ACCOUNT_SID, name, status, created, created)
        self.conferences[conf.sid] = conf
        self.participants[conf.sid] = {}
        return conf

    def add_participant_now(self, conf_sid: str, label: str | None = None, muted: bool = False,
                            created: dt.datetime = T0) -> Participant:
        p = Participant(sid("CA"), ACCOUNT_SID, conf_sid, ParticipantStatus.CONNECTED, created, created, label=label,
                        muted=muted)
        self.participants[conf_sid][p.call_sid] = p
        return p

    # -- ConferenceService --
    def list_conferences(self, flt: ConferenceFilter) -> list[Conference]:
        def keep(c: Conference) -> bool:
            day = c.date_created.date()
            return ((flt.friendly_name is None or c.friendly_name == flt.friendly_name)
                    and (flt.status is None or c.status == flt.status)
                    and (flt.created_on is None or day == flt.created_on)
                    and (flt.created_before is None or day <= flt.created_before)
                    and (flt.created_after is None or day >= flt.created_after))
        return [c for c in self.conferences.values() if keep(c)]

    def conference(self, sid: str) -> Conference:
        if sid not in self.conferences:
            raise NotFound(f"Conference {sid}")
        return self.conferences[sid]

    async def end(self, sid: str) -> Conference:
        conf = dataclasses.replace(self.conference(sid), status=ConferenceStatus.COMPLETED,
                                   reason_conference_ended="conference-ended-via-api")
        self.conferences[sid] = conf
        self.participants[sid].clear()
        return conf

    async def announce(self, sid: str, url: str, method: str) -> Conference:
        self.announced.append((sid, url, method))
        return self.conference(sid)

    def list_participants(self, sid: str, muted: bool | None = None, hold: bool | None = None,
                          coaching: bool | None = None) -> list[Participant]:
        self.conference(sid)
        return [p for p in self.participants[sid].values()
                if (muted is None or p.muted == muted) and (hold is None or p.hold == hold)
                and (coaching is None or p.coaching == coaching)]

    def participant(self, sid: str, key: str) -> Participant:
        self.conference(sid)
        for p in self.participants[sid].values():
            if key in (p.call_sid, p.label):
                return p
        raise NotFound(f"Participant {key}")

    async def update_participant(self, sid: str, key: str, update: ParticipantUpdate) -> Participant:
        p = self.participant(sid, key)
        self.updates.append(update)
        changes = {name: value for name in ("muted", "hold", "end_conference_on_exit", "coaching",
                                            "call_sid_to_coach")
                   if (value := getattr(update, name)) is not None}
        p = dataclasses.replace(p, **changes)
        self.participants[sid][p.call_sid] = p
        return p

    async def kick(self, sid: str, key: str) -> None:
        del self.participants[sid][self.participant(sid, key).call_sid]

    async def add_participant(self, sid_or_name: str, create: ParticipantCreate) -> Participant:
        conf = self.conferences.get(sid_or_name) or next(
            (c for c in self.conferences.values()
             if c.friendly_name == sid_or_name and c.status != ConferenceStatus.COMPLETED), None)
        if conf is None:
            if sid_or_name.startswith("CF"):
                raise NotFound(f"Conference {sid_or_name}")
            conf = self.add_conference(sid_or_name, ConferenceStatus.INIT)
        self.created.append((sid_or_name, create))
        p = Participant(sid("CA"), ACCOUNT_SID, conf.sid, ParticipantStatus.QUEUED, T0, T0, label=create.label,
                        muted=create.muted, coaching=create.coaching, call_sid_to_coach=create.call_sid_to_coach,
                        start_conference_on_enter=create.start_conference_on_enter,
                        end_conference_on_exit=create.end_conference_on_exit)
        self.participants[conf.sid][p.call_sid] = p
        return p

    def recordings(self, sid: str) -> list[str]:
        self.conference(sid)
        return list(self.recording_sids.get(sid, []))


class FakeRecordings:
    """The recording manager's lookups over a dict."""

    def __init__(self) -> None:
        self.by_sid: dict[str, Recording] = {}

    def add(self, conf_sid: str, created: dt.datetime = T0) -> Recording:
        rec = Recording(sid("RE"), ACCOUNT_SID, sid("CA"), 1, "conference", RecordingStatus.COMPLETED,
                        date_created=created, date_updated=created, duration=7, conference_sid=conf_sid)
        self.by_sid[rec.sid] = rec
        return rec

    def get(self, sid: str) -> Recording | None:
        return self.by_sid.get(sid)

    def media_url(self, rec: Recording) -> str:
        return f"{BASE}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{rec.sid}"

    def delete(self, sid: str) -> None:
        del self.by_sid[sid]


class FakeQueues:
    """A `QueueService` over dicts; records the dequeues."""

    def __init__(self) -> None:
        self.queues: dict[str, Queue] = {}
        self.members: dict[str, list[Member]] = {}
        self.dequeued: list[tuple[str, str, str, str]] = []
        self.clock = T0

    def _now(self) -> dt.datetime:
        self.clock += dt.timedelta(seconds=1)
        return self.clock

    def _sized(self, queue: Queue) -> Queue:
        members = self.members[queue.sid]
        wait = sum(m.wait_time for m in members) // len(members) if members else 0
        return dataclasses.replace(queue, current_size=len(members), average_wait_time=wait)

    def enqueue(self, queue_sid: str, wait_time: int = 10) -> Member:
        members = self.members[queue_sid]
        member = Member(sid("CA"), queue_sid, self._now(), len(members) + 1, wait_time)
        members.append(member)
        return member

    # -- QueueService --
    def list_queues(self) -> list[Queue]:
        return [self._sized(q) for q in self.queues.values()]

    def queue(self, sid: str) -> Queue:
        if sid not in self.queues:
            raise NotFound(f"Queue {sid}")
        return self._sized(self.queues[sid])

    def create_queue(self, friendly_name: str, max_size: int | None = None) -> Queue:
        if any(q.friendly_name == friendly_name for q in self.queues.values()):
            raise Conflict(f"A queue named {friendly_name!r} exists")
        now = self._now()
        queue = Queue(sid("QU"), ACCOUNT_SID, friendly_name, max_size or DEFAULT_MAX_QUEUE, now, now)
        self.queues[queue.sid] = queue
        self.members[queue.sid] = []
        return queue

    def update_queue(self, sid: str, friendly_name: str | None = None, max_size: int | None = None) -> Queue:
        queue = self.queue(sid)
        if friendly_name == "":
            raise InvalidArgument("empty name")
        queue = dataclasses.replace(queue, friendly_name=friendly_name or queue.friendly_name,
                                    max_size=max_size or queue.max_size, date_updated=self._now())
        self.queues[sid] = queue
        return self._sized(queue)

    def delete_queue(self, sid: str) -> None:
        if self.queue(sid).current_size:
            raise Conflict(f"Queue {sid} has callers waiting")
        del self.queues[sid]

    def list_members(self, sid: str) -> list[Member]:
        self.queue(sid)
        return list(self.members[sid])

    def member(self, sid: str, key: str) -> Member:
        members = self.list_members(sid)
        found = members[:1] if key == "Front" else [m for m in members if m.call_sid == key]
        if not found:
            raise NotFound(f"Member {key}")
        return found[0]

    async def dequeue(self, sid: str, key: str, url: str, method: str) -> Member:
        member = self.member(sid, key)
        self.members[sid] = [dataclasses.replace(m, position=i + 1) for i, m in
                             enumerate(m for m in self.members[sid] if m.call_sid != member.call_sid)]
        self.dequeued.append((sid, member.call_sid, url, method))
        return member


class Harness:
    """The Twilio Conferences and Queues routes over the fakes, with the official client and raw HTTP."""

    def __init__(self) -> None:
        self.conferences = FakeConferences()
        self.recordings = FakeRecordings()
        self.queues = FakeQueues()
        app = web.Application(middlewares=[error_middleware])
        add_twilio_conference_routes(app, Account(), self.conferences, BASE + "/", self.recordings)
        add_twilio_queue_routes(app, Account(), self.queues, BASE + "/")
        self.http = TestClient(TestServer(app))
        self.auth = encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)
        self.client: Client

    async def start(self) -> Harness:
        await self.http.start_server()
        http_client = TwilioHttpClient()
        if http_client.session is not None:
            http_client.session.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
        self.client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http_client)
        self.client.api.base_url = str(self.http.make_url("")).rstrip("/")
        return self

    async def close(self) -> None:
        await self.http.close()

    async def call(self, fn: Callable[[], T]) -> T:
        """Run a (blocking) official-client call off the event loop that serves it."""
        return await asyncio.to_thread(fn)

    async def raw(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> tuple[int, Any]:
        """A request under /2010-04-01/Accounts/{AccountSid} (with the account's credentials unless `auth` is
        off): (status, JSON body or None)."""
        headers = {"Authorization": self.auth} if auth else {}
        async with self.http.request(method, f"/2010-04-01/Accounts/{ACCOUNT_SID}/{path}", headers=headers,
                                     **kwargs) as resp:
            body = await resp.json() if resp.status != 204 else None
            return resp.status, body

    async def error(self, method: str, path: str, expected: tuple[int, int], **kwargs: Any) -> str:
        """Make a request that must fail with HTTP status and Twilio code `expected`; returns its message."""
        status, body = await self.raw(method, path, **kwargs)
        assert (status, body["code"], body["status"]) == (*expected, expected[0]), body
        assert body["more_info"] == f"https://www.twilio.com/docs/errors/{expected[1]}"
        return str(body["message"])
