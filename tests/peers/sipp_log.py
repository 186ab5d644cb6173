"""sipp's message log (``-trace_msg``) read back as SIP messages, and the Digest credentials they carry checked
against a password (used by `tests.peers.sipp_peer`, which re-exports them)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Direction = Literal["sent", "received"]

# "----------------------------------------------- 2026-11-24 13:12:09.706716"
_SEPARATOR_RE = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d(?:\.\d+)?)[^\n]*\n", re.MULTILINE)
# "UDP message received [512] bytes :" / "UDP message sent (309 bytes):"
_ENTRY_HEAD_RE = re.compile(r"^(?P<transport>\S+) (?:control )?message (?P<direction>sent|received)\b")
_HEADER_END_RE = re.compile(r"\r?\n\r?\n")
_COMPACT_HEADERS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
}
_DIGEST_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class SipMessage:
    """One SIP message from sipp's message log, as sipp sent or received it."""

    direction: Direction
    """'sent' or 'received', from sipp's point of view."""
    timestamp: float
    """Seconds since the epoch, from the log entry's header line (sipp writes local time)."""
    transport: str
    """Transport named by sipp, e.g. 'UDP'."""
    raw: str
    """The message text as logged (CRLF line ends preserved)."""
    retransmission: bool = False
    """True when an identical message already went the same way (a retransmission)."""

    @property
    def first_line(self) -> str:
        """The start line, e.g. 'INVITE sip:bob@127.0.0.1:5080 SIP/2.0' or 'SIP/2.0 180 Ringing'."""
        return self.raw.split("\n", 1)[0].rstrip("\r")

    @property
    def is_response(self) -> bool:
        """True for a response (start line 'SIP/2.0 <code> <reason>')."""
        return self.first_line.startswith("SIP/")

    @property
    def is_request(self) -> bool:
        """True for a request."""
        return not self.is_response

    @property
    def status_code(self) -> int | None:
        """The response code, or None for a request."""
        if not self.is_response:
            return None
        parts = self.first_line.split(maxsplit=2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def reason(self) -> str | None:
        """The response's reason phrase, or None for a request."""
        if not self.is_response:
            return None
        parts = self.first_line.split(maxsplit=2)
        return parts[2] if len(parts) > 2 else ""

    @property
    def method(self) -> str | None:
        """The request method, or None for a response (see :attr:`cseq_method` for those)."""
        if self.is_response:
            return None
        return self.first_line.split(maxsplit=1)[0]

    @property
    def request_uri(self) -> str | None:
        """The Request-URI, or None for a response."""
        if self.is_response:
            return None
        parts = self.first_line.split()
        return parts[1] if len(parts) > 1 else None

    @property
    def cseq_method(self) -> str | None:
        """The method named in CSeq (the request a response answers)."""
        cseq = self.header("CSeq")
        if not cseq:
            return None
        parts = cseq.split()
        return parts[1] if len(parts) > 1 else None

    @property
    def call_id(self) -> str | None:
        """The Call-ID header value."""
        return self.header("Call-ID")

    def _split(self) -> tuple[list[str], str]:
        match = _HEADER_END_RE.search(self.raw)
        if match is None:
            head, body = self.raw, ""
        else:
            head, body = self.raw[: match.start()], self.raw[match.end() :]
        lines = head.replace("\r\n", "\n").split("\n")[1:]
        headers: list[str] = []
        for line in lines:
            if line[:1] in (" ", "\t") and headers:
                headers[-1] += " " + line.strip()
            elif line:
                headers.append(line)
        return headers, body

    def headers(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive, compact forms understood), in order."""
        wanted = name.strip().rstrip(":").lower()
        values: list[str] = []
        for line in self._split()[0]:
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            if _COMPACT_HEADERS.get(key, key) == wanted:
                values.append(value.strip())
        return values

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None when absent."""
        values = self.headers(name)
        return values[0] if values else None

    @property
    def body(self) -> str:
        """The message body (cut to Content-Length when one is given)."""
        body = self._split()[1]
        length = self.header("Content-Length")
        if length is not None and length.strip().isdigit():
            encoded = body.encode("utf-8", "surrogateescape")[: int(length)]
            return encoded.decode("utf-8", "surrogateescape")
        return body.rstrip("\r\n")

    def __str__(self) -> str:
        arrow = "->" if self.direction == "sent" else "<-"
        return f"{arrow} {self.first_line}"


def _parse_timestamp(text: str) -> float:
    text = text.replace("\t", " ")
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).timestamp()


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse a sipp ``-trace_msg`` log into messages, in log order.

    The log is a series of entries, each::

        ----------------------------------------------- 2026-11-24 13:12:09.706716
        UDP message received [512] bytes :

        INVITE sip:service@127.0.0.1:47001 SIP/2.0\\r\\n...

    (sent entries read ``UDP message sent (309 bytes):``).  Entries of other kinds are
    skipped.  Retransmissions (a message identical to an earlier one in the same
    direction) are flagged, not dropped.
    """
    messages: list[SipMessage] = []
    seen: set[tuple[str, str]] = set()
    marks = list(_SEPARATOR_RE.finditer(text))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        entry = text[mark.end() : end]
        head, _, rest = entry.partition("\n")
        found = _ENTRY_HEAD_RE.match(head.strip())
        if found is None:
            continue
        raw = rest.lstrip("\n")
        # The log adds its own LF framing after the message; keep the message's CRLFs.
        while raw.endswith("\n") and not raw.endswith("\r\n"):
            raw = raw[:-1]
        if not raw.strip():
            continue
        direction: Direction = "sent" if found["direction"] == "sent" else "received"
        key = (direction, raw)
        messages.append(
            SipMessage(
                direction=direction,
                timestamp=_parse_timestamp(mark.group(1)),
                transport=found["transport"],
                raw=raw,
                retransmission=key in seen,
            )
        )
        seen.add(key)
    return messages


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _digest_hash(algorithm: str, text: str) -> str:
    name = algorithm.lower().removesuffix("-sess")
    if name in ("", "md5"):
        return _md5(text)
    if name == "sha-256":
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    if name == "sha-512-256":
        return hashlib.new("sha512_256", text.encode("utf-8")).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


def parse_digest(header_value: str) -> dict[str, str]:
    """Parse the parameters of a ``Digest ...`` credentials or challenge value (keys lower-case)."""
    scheme, _, params = header_value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    result: dict[str, str] = {}
    for match in _DIGEST_PARAM_RE.finditer(params):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        result[match.group(1).lower()] = value
    return result


def digest_response_ok(header_value: str, method: str, username: str, password: str, body: str = "") -> bool:
    """Check a Digest ``Authorization``/``Proxy-Authorization`` value against a password (RFC 2617/7616).

    The username in the credentials must equal ``username``; realm, nonce, uri, qop,
    nc and cnonce are taken from the credentials themselves.
    """
    params = parse_digest(header_value)
    needed = ("username", "realm", "nonce", "uri", "response")
    if not params or any(key not in params for key in needed) or params["username"] != username:
        return False
    algorithm = params.get("algorithm", "MD5")
    try:
        ha1 = _digest_hash(algorithm, f"{username}:{params['realm']}:{password}")
        if algorithm.lower().endswith("-sess"):
            ha1 = _digest_hash(algorithm, f"{ha1}:{params['nonce']}:{params.get('cnonce', '')}")
        qop = params.get("qop", "")
        if qop == "auth-int":
            ha2 = _digest_hash(algorithm, f"{method}:{params['uri']}:{_digest_hash(algorithm, body)}")
        else:
            ha2 = _digest_hash(algorithm, f"{method}:{params['uri']}")
        if qop:
            tail = f"{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:{qop}:{ha2}"
        else:
            tail = f"{params['nonce']}:{ha2}"
        expected = _digest_hash(algorithm, f"{ha1}:{tail}")
    except ValueError:
        return False
    return expected == params["response"].lower()
