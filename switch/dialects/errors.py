"""Twilio's JSON error body, and the middleware that renders every failure under /2010-04-01 with it.

Twilio answers every REST error with the same small document, which the official clients parse into
`TwilioRestException(status, uri, msg, code)`::

    {"code": 21201, "message": "No 'To' number is specified",
     "more_info": "https://www.twilio.com/docs/errors/21201", "status": 400}

Handlers raise `switch.core.errors.ApiError` (or a subclass) and never build error responses themselves.
The middleware only touches requests whose path is under the Twilio API root, so another dialect mounted
on the same application (Exotel's `/v1/...`) keeps its own error format.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from switch.core.errors import ApiError

log = logging.getLogger(__name__)

API_ROOT = "/2010-04-01"
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
AUTH_REALM = 'Basic realm="softswitch"'

# Twilio's generic codes for plain HTTP failures (router misses, oversized bodies, crashes).
NOT_FOUND = 20404
METHOD_NOT_ALLOWED = 20004
INTERNAL_ERROR = 20500


class Unauthorized(ApiError):
    """401 / 20003: credentials missing or wrong; rendered with a Basic challenge."""

    def __init__(self) -> None:
        super().__init__(401, 20003, "Authenticate")


class InvalidParameter(ApiError):
    """A 400 for one request parameter; `code` defaults to Twilio's generic 20001 "Invalid parameter"."""

    def __init__(self, message: str, code: int = 20001) -> None:
        super().__init__(400, code, message)


def error_body(http_status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error document."""
    return {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": http_status,
    }


def error_response(err: ApiError) -> web.Response:
    """Render an `ApiError` as Twilio does (with a Basic challenge for 401s)."""
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
    """Map `ApiError`, router misses and crashes under /2010-04-01 to Twilio's JSON error body.

    Requests outside the Twilio API root pass through untouched.
    """
    if not is_twilio_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error_response(request, exc)
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error_response(ApiError(500, INTERNAL_ERROR, "Internal Server Error"))
