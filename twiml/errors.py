"""TwiML errors and warnings, with Twilio's codes for bad documents.

Twilio sorts document problems into two levels (its Error and Warning Dictionary,
https://www.twilio.com/docs/api/errors, gives each code a "Log Level"), and softswitch does the same:

- **Errors** end the document: the FallbackUrl is requested, or the caller hears the application-error message
  and the call ends. Raised as :class:`TwimlError`.

  - 12100 *Document parse failure*: not XML, truncated, no ``<Response>`` root, a DTD or entity (refused, never
    expanded), too big or nested too deeply.
  - 12300 *Invalid Content-Type*: the fetched document was not served as XML (raised by the fetcher).
  - The few attribute checks Twilio logs at ERROR level: 13338 (``<Gather actionOnEmptyResult>``), 13621
    (``recordingStatusCallbackEvent``), 32501 (any attribute of ``<Conversation>``).
  - 31105 *Invalid client name*: a ``<Dial><Client>`` identity that is empty, longer than 256 characters, or
    contains whitespace or control characters.
  - 13750 *TwiML verb not supported*: a real Twilio verb or noun that softswitch does not implement
    (``<Pay>``, ``<Dial><Sim>``, ...). Twilio would run it; skipping it would change the call flow
    behind the app's back, so softswitch refuses the document instead.

- **Warnings** are logged on the call (a Notification with ``Log`` 1) and the call goes on with the problem
  ignored. Returned in :attr:`twiml.verbs.Response.warnings` as :class:`TwimlWarning`.

  - 12200 *Schema validation warning*: an unknown attribute (ignored), an unknown, misspelled or wrong-case
    element, or an element nested where it is not allowed (skipped with its content).
  - The verb-specific value warnings (13210-13910: ``Gather: Invalid numDigits value`` and so on): the attribute
    is ignored and its default used.
  - Twilio features accepted but not acted on by softswitch (speech input, transcription, SSML markup, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

PARSE_FAILURE = 12100
# Twilio's "Internal Failure": what the switch reports when it, not the app, could not go on (a bug, a media
# failure, a lost media worker).  The switch's own copy is `switch.core.errors.INTERNAL_FAILURE`.
INTERNAL_FAILURE = 12400
SCHEMA_VALIDATION = 12200
INVALID_CONTENT_TYPE = 12300

GATHER_INVALID_NESTED_VERB = 13320
DIAL_INVALID_NESTED_ELEMENT = 13215
DIAL_INVALID_PHONE_NUMBER = 13223
DIAL_SIP_INVALID_URI = 13243
DIAL_TOO_MANY_URIS = 13250
SAY_INVALID_TEXT = 13520
VERB_NOT_SUPPORTED = 13750
CLIENT_INVALID_NAME = 31105
CONVERSATION_INVALID_ATTRIBUTES = 32501


class TwimlError(Exception):
    """A TwiML document that cannot be run, with Twilio's error code.

    Attributes:
        code: Twilio's error code, e.g. :data:`PARSE_FAILURE`, :data:`INVALID_CONTENT_TYPE` or
            :data:`VERB_NOT_SUPPORTED`.
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


@dataclass(frozen=True, slots=True)
class TwimlWarning:
    """A problem in a document that was ignored so the call could go on, with Twilio's warning code.

    Attributes:
        code: Twilio's warning code: :data:`SCHEMA_VALIDATION` or a verb-specific one (13xxx).
        message: what was wrong and what was done about it, naming the element and attribute.
        line: the 1-based line of the document, when known.
    """

    code: int
    message: str
    line: int | None = None

    @property
    def text(self) -> str:
        """The message with its line, as recorded in the call's Notifications."""
        return self.message if self.line is None else f"line {self.line}: {self.message}"

    def __str__(self) -> str:
        return f"{self.code}: {self.text}"
