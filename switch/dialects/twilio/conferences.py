"""Twilio's 2010-04-01 Conferences, their Participants and their Recordings over a `ConferenceService`, close enough
for the official client.

Routes under /2010-04-01/Accounts/{AccountSid} (HTTP Basic, see `switch.dialects.auth`)::

    GET    Conferences.json                          list (DateCreated[<>], DateUpdated[<>], FriendlyName, Status)
    GET    Conferences/{CF}.json                     fetch
    POST   Conferences/{CF}.json                     Status=completed ends it; AnnounceUrl (AnnounceMethod) plays
    GET    Conferences/{CF}/Participants.json        list (Muted, Hold, Coaching)
    POST   Conferences/{CF}/Participants.json        dial From -> To into the conference ({CF} may be its name) -> 201
    GET    Conferences/{CF}/Participants/{key}.json  fetch ({key}: the CallSid or the participant's label)
    POST   Conferences/{CF}/Participants/{key}.json  mute, hold, announce, coach...
    DELETE Conferences/{CF}/Participants/{key}.json  kick -> 204
    GET    Conferences/{CF}/Recordings.json          the conference's recordings (DateCreated[<>]), newest first
    GET    Conferences/{CF}/Recordings/{RE}.json     fetch
    DELETE Conferences/{CF}/Recordings/{RE}.json     delete -> 204

Participant parameters that do not apply to a self-hosted switch (Region, JitterBufferSize, Byoc, CallReason,
RecordingChannels, RecordingTrack, Trim, WaitUrl on update, BeepOnExit...) are accepted and ignored; asking for
what it cannot do (Record=true, MachineDetection) is a 400.  Invalid labels are Twilio's 16024, a label in use
16026; the To/From/URL/method errors are the Calls resource's codes (21201, 21213, 21211, 21212, 21205, 21209).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiohttp import web

from switch.core.conference_model import (
    Conference,
    ConferenceFilter,
    ConferenceService,
    ConferenceStatus,
    Participant,
)
from switch.core.errors import NotFound
from switch.core.paging import PageKey, select_page, within_days
from switch.core.recording_model import Recording
from switch.dialects.auth import Credentials
from switch.dialects.errors import API_ROOT, InvalidParameter
from switch.dialects.forms import cut_page, get_param, parse_page_request, parse_url, read_form
from switch.dialects.twilio.api import API_VERSION, rfc2822, slice_envelope
from switch.dialects.twilio.conference_params import (
    LABEL_IN_USE,
    flag,
    parse_conference_filter,
    parse_day,
    parse_participant_create,
    parse_participant_update,
)
from switch.dialects.twilio.params import parse_method
from switch.dialects.twilio.recordings import recording_to_json
from switch.dialects.twilio.sip_lists import created, mount

REGION = "us1"  # Twilio's default mixing region; a self-hosted switch mixes where it runs
CONFERENCE_FILTERS = ("DateCreated", "DateCreated<", "DateCreated>", "DateUpdated", "DateUpdated<", "DateUpdated>",
                      "FriendlyName", "Status")
PARTICIPANT_FILTERS = ("Muted", "Hold", "Coaching")
RECORDING_FILTERS = ("DateCreated", "DateCreated<", "DateCreated>")


class RecordingLookup(Protocol):
    """What the conference recordings routes need of the recording manager (`switch.core.recordings`)."""

    def get(self, sid: str) -> Recording | None: ...
    def media_url(self, rec: Recording) -> str: ...
    def delete(self, sid: str) -> None: ...


# -- rendering -------------------------------------------------------------------------------------------------
def conference_uri(account_sid: str, sid: str) -> str:
    return f"{API_ROOT}/Accounts/{account_sid}/Conferences/{sid}"


def conference_to_json(conf: Conference) -> dict[str, Any]:
    """A `Conference` as Twilio's Conference resource."""
    base = conference_uri(conf.account_sid, conf.sid)
    return {
        "account_sid": conf.account_sid,
        "date_created": rfc2822(conf.date_created),
        "date_updated": rfc2822(conf.date_updated),
        "api_version": API_VERSION,
        "friendly_name": conf.friendly_name,
        "region": REGION,
        "sid": conf.sid,
        "status": str(conf.status),
        "uri": f"{base}.json",
        "subresource_uris": {"participants": f"{base}/Participants.json", "recordings": f"{base}/Recordings.json"},
        "reason_conference_ended": conf.reason_conference_ended,
        "call_sid_ending_conference": conf.call_sid_ending_conference,
    }


def participant_to_json(p: Participant) -> dict[str, Any]:
    """A `Participant` as Twilio's Participant resource (its `uri` names it by CallSid)."""
    return {
        "account_sid": p.account_sid,
        "call_sid": p.call_sid,
        "label": p.label,
        "call_sid_to_coach": p.call_sid_to_coach,
        "coaching": p.coaching,
        "conference_sid": p.conference_sid,
        "date_created": rfc2822(p.date_created),
        "date_updated": rfc2822(p.date_updated),
        "end_conference_on_exit": p.end_conference_on_exit,
        "muted": p.muted,
        "hold": p.hold,
        "start_conference_on_enter": p.start_conference_on_enter,
        "status": str(p.status),
        "queue_time": p.queue_time,
        "uri": f"{conference_uri(p.account_sid, p.conference_sid)}/Participants/{p.call_sid}.json",
    }


def memory_page(request: web.Request, key: str, items: list[Any], page_key: Callable[[Any], PageKey],
                descending: bool, render: Callable[[Any], dict[str, Any]], path: str,
                filters: Sequence[str]) -> web.Response:
    """One page of a list held in memory, paged by cursor like every Twilio list here."""
    req = parse_page_request(request.query)
    found = select_page(items, page_key, descending, req.cursor, req.offset, req.page_size + 1)
    page = cut_page(found, req, page_key)
    given = [(name, value) for name in filters if (value := request.query.get(name))]
    return web.json_response(slice_envelope(key, page, render, req, path, given))


# -- handlers --------------------------------------------------------------------------------------------------
class TwilioConferences:
    """The Conferences, Participants and conference Recordings handlers, bound to one `ConferenceService`."""

    def __init__(self, service: ConferenceService, account_sid: str, public_base_url: str,
                 recordings: RecordingLookup | None = None) -> None:
        self.service = service
        self.account_sid = account_sid
        self.recordings = recordings
        self.public_base_url = public_base_url.rstrip("/")
        self.root = f"{API_ROOT}/Accounts/{account_sid}/Conferences"

    def _conference(self, request: web.Request) -> Conference:
        return self.service.conference(request.match_info["ConferenceSid"])

    # -- Conferences --
    async def read(self, request: web.Request) -> web.Response:
        """GET Conferences.json: newest first."""
        found = self.service.list_conferences(parse_conference_filter(request.query))
        return memory_page(request, "conferences", found, lambda c: PageKey(c.date_created, c.sid), True,
                           conference_to_json, f"{self.root}.json", CONFERENCE_FILTERS)

    async def fetch(self, request: web.Request) -> web.Response:
        return web.json_response(conference_to_json(self._conference(request)))

    async def update(self, request: web.Request) -> web.Response:
        """POST Conferences/{CF}.json: Status=completed ends the conference; AnnounceUrl plays into it."""
        conf = self._conference(request)
        params = await read_form(request)
        raw = get_param(params, "Status")
        if raw is not None and raw.lower() != ConferenceStatus.COMPLETED:
            raise InvalidParameter(f"Status can only be set to completed, not {raw!r}")
        announce_url = parse_url(params, "AnnounceUrl")
        announce_method = parse_method(params, "AnnounceMethod") or "POST"
        if raw is not None:
            conf = await self.service.end(conf.sid)
        elif announce_url is not None:
            conf = await self.service.announce(conf.sid, announce_url, announce_method)
        return web.json_response(conference_to_json(conf))

    # -- Participants --
    async def read_participants(self, request: web.Request) -> web.Response:
        """GET Participants.json: in the order they joined."""
        conf = self._conference(request)
        q = request.query
        found = self.service.list_participants(conf.sid, flag(q, "Muted"), flag(q, "Hold"), flag(q, "Coaching"))
        return memory_page(request, "participants", found, lambda p: PageKey(p.date_created, p.call_sid), False,
                           participant_to_json, f"{self.root}/{conf.sid}/Participants.json", PARTICIPANT_FILTERS)

    async def create_participant(self, request: web.Request) -> web.Response:
        """POST Participants.json: dial `To`; the conference ({CF}: its SID or friendly name) is made if needed."""
        create = parse_participant_create(await read_form(request))
        target = request.match_info["ConferenceSid"]
        if create.label is not None:
            try:
                self.service.participant(self._live_sid(target), create.label)
            except NotFound:
                pass
            else:
                raise InvalidParameter(f"Participant label {create.label!r} is in use by another participant",
                                       LABEL_IN_USE)
        made = await self.service.add_participant(target, create)
        return created(participant_to_json(made), self.public_base_url)

    def _live_sid(self, sid_or_name: str) -> str:
        """The SID of the conference a create names: by SID, or the live (not completed) one of that name."""
        live = (c for c in self.service.list_conferences(ConferenceFilter(friendly_name=sid_or_name))
                if c.status != ConferenceStatus.COMPLETED)
        return next((c.sid for c in live), sid_or_name)

    async def fetch_participant(self, request: web.Request) -> web.Response:
        conf = self._conference(request)
        return web.json_response(participant_to_json(self.service.participant(conf.sid, request.match_info["key"])))

    async def update_participant(self, request: web.Request) -> web.Response:
        conf = self._conference(request)
        key = request.match_info["key"]
        self.service.participant(conf.sid, key)  # an unknown participant is a 404 whatever the parameters
        update = parse_participant_update(await read_form(request))
        return web.json_response(participant_to_json(await self.service.update_participant(conf.sid, key, update)))

    async def delete_participant(self, request: web.Request) -> web.Response:
        """DELETE: kick the participant out of the conference; 204."""
        conf = self._conference(request)
        key = request.match_info["key"]
        self.service.participant(conf.sid, key)
        await self.service.kick(conf.sid, key)
        return web.Response(status=204)

    # -- Recordings --
    def _recording_json(self, rec: Recording, conf_sid: str) -> dict[str, Any]:
        assert self.recordings is not None
        body = recording_to_json(rec, self.recordings.media_url(rec))
        body["conference_sid"] = conf_sid
        body["uri"] = f"{self.root}/{conf_sid}/Recordings/{rec.sid}.json"
        return body

    def _conference_recordings(self, conf_sid: str) -> list[Recording]:
        if self.recordings is None:
            return []
        return [rec for sid in self.service.recordings(conf_sid) if (rec := self.recordings.get(sid)) is not None]

    async def read_recordings(self, request: web.Request) -> web.Response:
        """GET Recordings.json: the conference's recordings, newest first."""
        conf = self._conference(request)
        q = request.query
        on, before, after = (parse_day(q, name) for name in RECORDING_FILTERS)
        found = [r for r in self._conference_recordings(conf.sid) if within_days(r.date_created, on, before, after)]
        return memory_page(request, "recordings", found, lambda r: PageKey(r.date_created, r.sid), True,
                           lambda r: self._recording_json(r, conf.sid), f"{self.root}/{conf.sid}/Recordings.json",
                           RECORDING_FILTERS)

    def _recording(self, request: web.Request) -> Recording:
        conf = self._conference(request)
        sid = request.match_info["RecordingSid"]
        found = next((r for r in self._conference_recordings(conf.sid) if r.sid == sid), None)
        if found is None:
            raise NotFound(request.path)
        return found

    async def fetch_recording(self, request: web.Request) -> web.Response:
        rec = self._recording(request)
        return web.json_response(self._recording_json(rec, request.match_info["ConferenceSid"]))

    async def delete_recording(self, request: web.Request) -> web.Response:
        rec = self._recording(request)
        assert self.recordings is not None
        self.recordings.delete(rec.sid)
        return web.Response(status=204)


def add_twilio_conference_routes(app: web.Application, creds: Credentials, service: ConferenceService,
                                 public_base_url: str, recordings: RecordingLookup | None = None) -> None:
    """Mount Conferences, Participants and conference Recordings on `app` (which needs `error_middleware`).

    `recordings` finds the recordings `service.recordings` names; without it a conference lists none."""
    api = TwilioConferences(service, creds.account_sid, public_base_url, recordings)
    conf = "Conferences/{ConferenceSid}"
    routes = (
        ("Conferences", {"GET": api.read}),
        (conf, {"GET": api.fetch, "POST": api.update}),
        (f"{conf}/Participants", {"GET": api.read_participants, "POST": api.create_participant}),
        (f"{conf}/Participants/{{key}}", {"GET": api.fetch_participant, "POST": api.update_participant,
                                          "DELETE": api.delete_participant}),
        (f"{conf}/Recordings", {"GET": api.read_recordings}),
        (f"{conf}/Recordings/{{RecordingSid:RE[0-9a-fA-F]{{32}}}}", {"GET": api.fetch_recording,
                                                                     "DELETE": api.delete_recording}),
    )
    mount(app, creds, f"{API_ROOT}/Accounts/{{AccountSid}}", routes)
