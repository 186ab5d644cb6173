"""The TwiML error type and Twilio's error codes for bad documents.

The codes are the ones Twilio reports in its debugger and in the ``ErrorCode`` of a failed call, so an app
that already handles Twilio's errors recognises ours:

- 12100 *Document parse failure*: not XML, truncated, no ``<Response>`` root, a DTD or entity (refused, never
  expanded), too big or nested too deeply.
- 12200 *Schema validation*: unknown verb or noun, attribute not allowed or with a bad value, wrong nesting,
  or a Twilio feature softswitch does not support.
- 12300 *Invalid Content-Type*: the fetched document was not served as XML (raised by the fetcher).
"""

from __future__ import annotations

PARSE_FAILURE = 12100
SCHEMA_VALIDATION = 12200
INVALID_CONTENT_TYPE = 12300


class TwimlError(Exception):
    """A TwiML document that cannot be run, with Twilio's error code.

    Attributes:
        code: Twilio's error code: :data:`PARSE_FAILURE`, :data:`SCHEMA_VALIDATION` or
            :data:`INVALID_CONTENT_TYPE`.
        message: what is wrong, naming the element and attribute.
        line: the 1-based line of the document where the problem is, when known.
    """

    def __init__(self, code: int, message: str, line: int | None = None) -> None:
        self.code = code
        self.message = message
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"TwimlError(code={self.code!r}, message={self.message!r}, line={self.line!r})"
