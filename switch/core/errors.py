"""The switch's exception tree; each carries the data an edge needs to render it."""

from __future__ import annotations


class SwitchError(Exception):
    """Base of every error the switch raises on purpose."""


class ApiError(SwitchError):
    """A REST request that cannot be served: rendered as the dialect's JSON error body.

    `code` is Twilio's error code where one exists (20404 not found, 21201 no To, ...).
    """

    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


class NotFound(ApiError):
    def __init__(self, what: str) -> None:
        super().__init__(404, 20404, f"The requested resource {what} was not found")


class CapacityError(ApiError):
    """No media worker has a free call slot."""

    def __init__(self, message: str) -> None:
        super().__init__(429, 20429, message)


class SipError(SwitchError):
    """A SIP-level failure with its response code."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"SIP {status} {reason}")
        self.status = status
        self.reason = reason


class ConfigError(SwitchError):
    """The configuration file or environment is unusable."""
