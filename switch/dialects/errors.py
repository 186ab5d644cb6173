"""Errors at the REST edges: each dialect's own `ApiError`, the neutral core errors mapped to HTTP statuses and
Twilio's codes, and the middleware that renders every failure under /2010-04-01 as Twilio's JSON error body.

Twilio answers every REST error with the same small document, which the official clients parse into
`TwilioRestException(status, uri, msg, code)`::

    {"code": 21201, "message": "No 'To' number is specified",
     "more_info": "https://www.twilio.com/docs/errors/21201", "status": 400}

The core raises neutral `switch.core.errors.RequestError`s (`NotFound`, `InvalidArgument`, `CallNotLive`, ...);
`http_status` gives each an HTTP status (shared by the dialects) and `twilio_error` Twilio's code for it
(`TWILIO_CODES`, narrowed by `PROBLEM_CODES`).  Handlers raise those or an `ApiError`, which carries a dialect's
own code, and never build error responses themselves.  The middleware only touches requests whose path is under
the Twilio API root, so another dialect mounted on the same application (Exotel's `/v1/...`) keeps its own format.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from switch.core.errors import (
    CapacityError,
    Conflict,
    InvalidArgument,
    InvalidState,
    NotFound,
    Problem,
    RequestError,
    SwitchError,
    Unavailable,
)

log = logging.getLogger(__name__)

API_ROOT = "/2010-04-01"
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
AUTH_REALM = 'Basic realm="softswitch"'

# Twilio's generic codes for plain HTTP failures (router misses, oversized bodies, crashes).
NOT_FOUND = 20404
METHOD_NOT_ALLOWED = 20004
INTERNAL_ERROR = 20500
INVALID_PARAMETER = 20001

# The neutral errors' HTTP statuses (every dialect's) and Twilio's codes for them.
HTTP_STATUS: dict[type[RequestError], int] = {
    NotFound: 404,
    InvalidArgument: 400,
    InvalidState: 400,
    Conflict: 409,
    CapacityError: 429,
    Unavailable: 503,
}
TWILIO_CODES: dict[type[RequestError], int] = {
    NotFound: NOT_FOUND,
    InvalidArgument: INVALID_PARAMETER,
    InvalidState: 21220,  # "Call is not in-progress. Cannot redirect."; Twilio uses it for recordings too
    Conflict: INVALID_PARAMETER,
    CapacityError: 20429,  # Twilio's "Too Many Requests"
    Unavailable: 20503,  # "Service unavailable": try again with back-off
}
PROBLEM_CODES: dict[Problem, int] = {
    Problem.NO_ROUTE: 21215,  # "Geographic permission": the closest to "no trunk for this number"
    Problem.INVALID_TO: 21211,
    Problem.INVALID_URL: 21205,
    Problem.NUMBER_TAKEN: 21422,  # "PhoneNumber is not available"
    Problem.IDENTITY_WITH_ADDRESS: 50211,
    Problem.PARTICIPANT_EXISTS: 50433,
    Problem.UNIQUE_NAME_TAKEN: 50353,
    Problem.NOT_COMPLETE: 20009,  # "Cannot delete this resource before it is complete"
}


class ApiError(SwitchError):
    """A REST request that cannot be served, with a dialect's own `code`: rendered as that dialect's error body."""

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


class Unauthorized(ApiError):
    """401 / 20003: credentials missing or wrong; rendered with a Basic challenge."""

    def __init__(self) -> None:
        super().__init__(401, 20003, "Authenticate")


class InvalidParameter(ApiError):
    """A 400 for one request parameter; `code` defaults to Twilio's generic 20001 "Invalid parameter"."""

    def __init__(self, message: str, code: int = INVALID_PARAMETER) -> None:
        super().__init__(400, code, message)


def _kind(table: dict[type[RequestError], int], exc: RequestError, default: int) -> int:
    """`exc`'s entry in `table` (whose kinds are not subclasses of each other), `default` without one."""
    return next((value for kind, value in table.items() if isinstance(exc, kind)), default)


def http_status(exc: RequestError) -> int:
    """The HTTP status of a neutral error (400 for one no table names)."""
    return _kind(HTTP_STATUS, exc, 400)


def twilio_code(exc: RequestError) -> int:
    """Twilio's error code for a neutral error: its problem's when Twilio has one, else its kind's."""
    return PROBLEM_CODES.get(exc.problem) or _kind(TWILIO_CODES, exc, INVALID_PARAMETER)


def twilio_error(exc: RequestError | ApiError) -> ApiError:
    """A neutral error as Twilio reports it (an `ApiError` is Twilio's already)."""
    if isinstance(exc, ApiError):
        return exc
    return ApiError(http_status(exc), twilio_code(exc), exc.message)


def error_body(http_status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error document."""
    return {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": http_status,
    }


def error_response(err: RequestError | ApiError) -> web.Response:
    """Render an error as Twilio does (with a Basic challenge for 401s)."""
    err = twilio_error(err)
    headers = {"WWW-Authenticate": AUTH_REALM} if err.http_status == 401 else None
    return web.json_response(
        error_body(err.http_status, err.code, err.message), status=err.http_status, headers=headers
    )


def is_twilio_path(path: str) -> bool:
    """True for paths under the Twilio API root."""
    return path == API_ROOT or path.startswith(API_ROOT + "/")


def _http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        err = ApiError(404, NOT_FOUND, f"The requested resource {request.path} was not found")
    elif exc.status == 405:
        err = ApiError(405, METHOD_NOT_ALLOWED, f"Method {request.method} not allowed on {request.path}")
    else:
        # Twilio's own generic codes follow 20000 + HTTP status (20403, 20429, 20500, 20503).
        err = ApiError(exc.status, 20000 + exc.status, exc.reason)
    return error_response(err)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map neutral errors, `ApiError`, router misses and crashes under /2010-04-01 to Twilio's JSON error body.

    Requests outside the Twilio API root pass through untouched.
    """
    if not is_twilio_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except (RequestError, ApiError) as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error_response(request, exc)
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(ApiError(500, INTERNAL_ERROR, "Internal Server Error"))
