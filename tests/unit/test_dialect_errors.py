"""The core's neutral errors, as each dialect reports them: HTTP status and Twilio's code, or Exotel's body."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import make_mocked_request

from switch.core.errors import (
    CallNotLive,
    CapacityError,
    Conflict,
    InvalidArgument,
    InvalidState,
    NotFound,
    Problem,
    RequestError,
)
from switch.core.numbers import NumberTaken
from switch.core.recording_model import RecordingStatus
from switch.core.recordings import RecordingStateError
from switch.dialects.errors import error_response, http_status, twilio_error
from switch.dialects.exotel.api import error_response as exotel_error_response


@pytest.mark.parametrize(("error", "status", "code"), [
    (NotFound("/Calls/CA1"), 404, 20404),
    (InvalidArgument("bad"), 400, 20001),
    (InvalidArgument("no trunk", Problem.NO_ROUTE), 400, 21215),
    (InvalidArgument("not a number", Problem.INVALID_TO), 400, 21211),
    (InvalidArgument("not a URL", Problem.INVALID_URL), 400, 21205),
    (InvalidArgument("both", Problem.IDENTITY_WITH_ADDRESS), 400, 50211),
    (NumberTaken("+15550100", "PN1"), 400, 21422),
    (InvalidState("recording"), 400, 21220),
    (CallNotLive("Call is not in-progress. Cannot redirect or modify."), 400, 21220),
    (RecordingStateError("RE1", RecordingStatus.COMPLETED, RecordingStatus.PAUSED), 400, 21220),
    (Conflict("taken", Problem.UNIQUE_NAME_TAKEN), 409, 50353),
    (Conflict("there", Problem.PARTICIPANT_EXISTS), 409, 50433),
    (CapacityError("all 4 call slots are busy"), 429, 20429),
])
def test_neutral_errors_render_as_twilio_reports_them(error: RequestError, status: int, code: int) -> None:
    rendered = twilio_error(error)
    assert (rendered.http_status, rendered.code, rendered.message) == (status, code, error.message)
    assert http_status(error) == status
    response = error_response(error)
    assert response.status == status and response.text is not None
    assert json.loads(response.text) == {
        "code": code, "message": error.message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status}


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_neutral_errors_render_as_exotel_reports_them(suffix: str) -> None:
    request = make_mocked_request("GET", f"/v1/Accounts/x/Calls/CA1{suffix}")
    response = exotel_error_response(request, NotFound("/v1/Accounts/x/Calls/CA1"))
    assert response.status == 404 and response.text is not None
    body = response.text
    message = "The requested resource /v1/Accounts/x/Calls/CA1 was not found"
    if suffix:
        assert json.loads(body) == {"RestException": {"Status": 404, "Message": message}}
    else:
        assert f"<Status>404</Status><Message>{message}</Message>" in body
