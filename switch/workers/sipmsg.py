"""Just enough SIP message text for the dialog facts of a leg: read the head of a message, split header values,
take URIs, tags and addresses apart (RFC 3261 section 7, 20 and 25).

Both ends of the worker protocol use it: the worker folds the messages pjsua2 shows it into a leg's `Dialog`
(`switch.worker.dialog`), and the control plane's reaper reads the far ends' answers to the requests it sends
for a dead worker (`switch.workers.reaper`).  Nothing here validates a message: pjsip has parsed (or refused)
whatever the worker sees, and the reaper only matches answers by Call-ID and CSeq.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

COMPACT = {"i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via", "l": "content-length",
           "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding"}
# Headers whose values may be comma-joined on one line (RFC 3261 7.3.1); From, To and Call-ID never are.
_LISTS = {"via", "route", "record-route", "contact"}


@dataclass(frozen=True)
class SipHead:
    """The start line and headers (lower-case full names, values in order) of one SIP message."""

    start: str
    headers: tuple[tuple[str, str], ...]

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def code(self) -> int:
        """The status code of a response (0 for a request)."""
        parts = self.start.split(" ", 2)
        return int(parts[1]) if self.is_response and len(parts) > 1 and parts[1].isdigit() else 0

    @property
    def method(self) -> str:
        """The method of a request, or the one its CSeq names for a response."""
        if self.is_response:
            return self.cseq[1]
        return self.start.split(" ", 1)[0]

    @property
    def request_uri(self) -> str:
        parts = self.start.split(" ")
        return parts[1] if not self.is_response and len(parts) == 3 else ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = self.first("cseq").partition(" ")
        return (int(number) if number.isdigit() else -1), method.strip()

    def all(self, name: str) -> list[str]:
        """Every value of header `name`, comma-joined lines split for the list headers."""
        name = name.lower()
        values = [value for key, value in self.headers if key == name]
        if name in _LISTS:
            return [part for value in values for part in split_list(value)]
        return values

    def first(self, name: str) -> str:
        values = self.all(name)
        return values[0] if values else ""


def parse_head(text: str) -> SipHead | None:
    """The head of a message (its body is ignored); None when the text has no start line."""
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")
    start = lines[0].strip()
    if not start:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded continuation line
            key, value = headers[-1]
            headers[-1] = (key, f"{value} {line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        headers.append((COMPACT.get(key, key), value.strip()))
    return SipHead(start, tuple(headers))


def request_uri(text: str) -> str:
    """The Request-URI of a request's text ("" for anything else)."""
    parts = text.split("\r\n", 1)[0].split(" ")
    return parts[1] if len(parts) >= 3 else ""


def x_headers(text: str, limit: int = 64) -> dict[str, str]:
    """The `X-` headers of a message's head, their names as written (the first of a repeated name wins), at most
    `limit` of them: Twilio hands a SIP call's X- headers to the app as `SipHeader_<name>` parameters."""
    found: dict[str, str] = {}
    head = parse_head(text)
    if head is None:
        return found
    for line in text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")[1:]:
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key[:2].lower() == "x-" and key not in found and len(found) < limit:
            found[key] = value.strip()
    return found


def split_list(value: str) -> list[str]:
    """`a, "x, y" <sip:b>, <sip:c;p=1,2>` -> its elements: commas inside quotes or <...> do not split."""
    if "," not in value:  # most header values: one element
        value = value.strip()
        return [value] if value else []
    parts: list[str] = []
    current: list[str] = []
    quoted = angle = False
    escaped = False
    for char in value:
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            angle = True
        elif char == ">":
            angle = False
        elif char == "," and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _split_name_addr(value: str) -> tuple[str, str]:
    """(URI, header parameters) of a From/To/Contact/Route value, name-addr or bare addr-spec."""
    if "<" in value and ">" in value:
        start = value.index("<")
        end = value.index(">", start)
        return value[start + 1:end].strip(), value[end + 1:]
    # addr-spec without <>: parameters after the URI belong to the header (RFC 3261 20.10)
    uri, sep, params = value.strip().partition(";")
    return uri, sep + params


def uri_of(value: str) -> str:
    """The URI of a name-addr (`"Bob" <sip:bob@h;lr>;tag=1` -> `sip:bob@h;lr`) or of a bare addr-spec."""
    return _split_name_addr(value)[0]


def header_param(value: str, name: str) -> str | None:
    """A header parameter (`tag`, `branch`, `received`, `rport`) outside the URI; "" when it has no value."""
    params = _split_name_addr(value)[1] if not value.startswith("SIP/") else value.partition(";")[2]
    for param in params.split(";"):
        key, sep, found = param.strip().partition("=")
        if key.lower() == name.lower():
            return found.strip().strip('"') if sep else ""
    return None


def with_tag(value: str, tag: str) -> str:
    """A From/To value with `;tag=tag` added (it has none yet)."""
    return f"{value};tag={tag}" if "<" in value else f"<{value.strip()}>;tag={tag}"


def uri_host_port(uri: str) -> tuple[str, int | None]:
    """(host, port or None) of a SIP URI: `sip:bob@[::1]:5070;lr` -> ("::1", 5070)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    hostport = rest.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    return host, (int(port) if port.isdigit() else None)


def uri_param(uri: str, name: str) -> str | None:
    """A URI parameter (`transport`, `lr`, `maddr`) of a SIP URI; "" when it has no value."""
    params = uri.split("?", 1)[0].split(";")[1:]
    for param in params:
        key, sep, value = param.partition("=")
        if key.strip().lower() == name.lower():
            return value.strip() if sep else ""
    return None


def via_transport(via: str) -> str:
    """`SIP/2.0/TCP host;branch=..` -> `tcp`."""
    protocol = via.split(None, 1)[0] if via.strip() else ""
    return protocol.rsplit("/", 1)[-1].lower() or "udp"


def via_address(via: str) -> tuple[str, int]:
    """Where a response to a request with this top Via goes: `received` and `rport` when present (RFC 3581),
    else its sent-by (port 5060 by default)."""
    sent_by = via.split(None, 1)[1].split(";", 1)[0].strip() if len(via.split(None, 1)) > 1 else ""
    host, port = uri_host_port(f"sip:{sent_by}")
    received = header_param(via, "received")
    rport = header_param(via, "rport")
    return (received or host), (int(rport) if rport and rport.isdigit() else port or 5060)


def split_address(text: str) -> tuple[str, int] | None:
    """`127.0.0.1:5070` or `[::1]:5070` -> (host, port); None for anything else."""
    host, port = uri_host_port(f"sip:{text}")
    return (host, port) if host and port else None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
