"""Parse and validate a whole TwiML document into :mod:`twiml.verbs` dataclasses, or fail with one error.

Pure: no I/O, no clock. The XML is read with defusedxml's expat parser with DTDs, entity declarations and
external references all refused, so the billion-laughs and XXE attacks are a 12100 error before anything is
expanded or fetched. The size is checked before parsing and the nesting depth while parsing.

Dispatch is by explicit tables: :data:`VERBS` (allowed directly under ``<Response>``), :data:`NOUNS`,
:data:`CHILDREN` (which tags may appear inside which) and, in :mod:`twiml.schema`, one attribute table per
element. Nothing is looked up by reflection.

The whole document is validated before :func:`parse` returns, in document order. Problems are sorted as Twilio
sorts them (see :mod:`twiml.errors`):

- Warnings, collected in :attr:`Response.warnings` with Twilio's code and the line, while the rest of the
  document still runs: an unknown attribute (ignored), a bad attribute value (the default is used), an unknown,
  wrong-case or misplaced element (skipped with its content), a verb that cannot run as written (an empty
  ``<Play>``, a ``<Dial>`` with nothing to dial: skipped), and things softswitch accepts but does not act on
  (speech in a language other than en-US, SSML markup, ``<Parameter>`` in ``<Hangup>``/``<Reject>``, stray text).
- Errors, raised as :class:`~twiml.errors.TwimlError` at the first one: not well-formed XML (12100), the few
  attribute values Twilio logs at ERROR level (13338, 13621, 32501), a ``<Client>`` identity that is empty, too
  long or has whitespace or control characters (31105), a Twilio verb or noun softswitch does not implement
  (13750), and the call-center rules of :mod:`twiml.parse_callcenter` (a nameless ``<Conference>``, ``<Queue>`` or
  ``<Enqueue>``, a ``<Dial>`` mixing a ``<Conference>`` or ``<Queue>`` with other nouns: 12200).
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from twiml.errors import (
    CLIENT_INVALID_NAME,
    DIAL_INVALID_NESTED_ELEMENT,
    DIAL_INVALID_PHONE_NUMBER,
    DIAL_SIP_INVALID_URI,
    GATHER_INVALID_NESTED_VERB,
    PARSE_FAILURE,
    SAY_INVALID_TEXT,
    SCHEMA_VALIDATION,
    VERB_NOT_SUPPORTED,
    TwimlError,
    TwimlWarning,
)
from twiml.parse_callcenter import CALLCENTER_CONTENT, CALLCENTER_NOUNS, CALLCENTER_VERBS
from twiml.schema import ELEMENTS, SSML_TAGS, UNSUPPORTED, BadValue, client_identity
from twiml.verbs import (
    MAX_STREAM_PARAMETERS,
    Client,
    Connect,
    ConnectNoun,
    Conversation,
    Dial,
    DialNoun,
    Gather,
    Hangup,
    Number,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Response,
    Say,
    Sip,
    Start,
    Stop,
    Stream,
    Verb,
)
from twiml.xmlread import MAX_DEPTH, read_xml

__all__ = ["CHILDREN", "DEFAULT_MAX_BYTES", "MAX_DEPTH", "NOUNS", "VERBS", "Response", "TwimlError", "parse"]

DEFAULT_MAX_BYTES: Final = 64 * 1024
"""The largest document `parse` accepts unless told otherwise, in bytes (UTF-8 for text)."""
CACHED_MAX_CHARS: Final = 8 * 1024
"""Documents up to this length are kept, parsed, for the next call that gets the same one (see `parse`)."""
CACHED_DOCUMENTS: Final = 256
"""How many parsed documents are kept (the least recently used goes first)."""

VERBS: Final[Mapping[str, type[Verb]]] = {
    "Say": Say,
    "Play": Play,
    "Pause": Pause,
    "Gather": Gather,
    "Record": Record,
    "Redirect": Redirect,
    "Hangup": Hangup,
    "Reject": Reject,
    "Dial": Dial,
    "Connect": Connect,
    "Start": Start,
    "Stop": Stop,
    **CALLCENTER_VERBS,
}
"""The verbs allowed directly under ``<Response>``."""

NOUNS: Final[Mapping[str, type[DialNoun | ConnectNoun]]] = {
    "Number": Number,
    "Sip": Sip,
    "Client": Client,
    "Conversation": Conversation,
    "Stream": Stream,
    **CALLCENTER_NOUNS,
}
"""The nouns, each allowed only inside its verb (see :data:`CHILDREN`)."""

CHILDREN: Final[Mapping[str, frozenset[str]]] = {
    "Response": frozenset(VERBS),
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset({"Number", "Sip", "Client", *CALLCENTER_NOUNS}),
    "Client": frozenset({"Identity", "Parameter"}),
    "Connect": frozenset({"Conversation", "Stream"}),
    "Start": frozenset({"Stream"}),
    "Stop": frozenset({"Stream"}),
    "Stream": frozenset({"Parameter"}),
    "Hangup": frozenset({"Parameter"}),
    "Reject": frozenset({"Parameter"}),
    "Say": SSML_TAGS,
}
"""The child elements each element may contain; an element missing here contains none."""


def parse(document: str | bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Response:
    """Parse and validate a TwiML voice document.

    Args:
        document: the document as text, or as bytes in the encoding its XML declaration names (UTF-8 if none).
        max_bytes: the largest document accepted, counted in bytes (UTF-8 for text).

    Returns:
        The verbs in document order, and a warning for each problem that was ignored or skipped.

    Raises:
        TwimlError: 12100 if the document is too big, not well-formed XML, has a DTD or entities, is nested
            too deeply, or its root is not ``<Response>``; 13338, 13621 or 32501 for an attribute value Twilio
            treats as an error; 13750 for a Twilio verb or noun softswitch does not support.

    Parsing is pure and its result immutable (frozen dataclasses and tuples), so the results of the last
    `CACHED_DOCUMENTS` documents of up to `CACHED_MAX_CHARS` are kept and handed out again: an app that answers
    every call with the same TwiML has it parsed once.  Failures are not kept.
    """
    if len(document) <= CACHED_MAX_CHARS:
        return _parse_cached(document, max_bytes)
    return _parse(document, max_bytes)


@functools.lru_cache(maxsize=CACHED_DOCUMENTS)
def _parse_cached(document: str | bytes, max_bytes: int) -> Response:
    return _parse(document, max_bytes)


def _parse(document: str | bytes, max_bytes: int) -> Response:
    root, lines = read_xml(document, max_bytes)
    if root.tag != "Response":
        raise TwimlError(PARSE_FAILURE, f"the root element must be <Response>, not <{root.tag}>", lines.get(root))
    walker = _Walker(lines)
    walker.attributes(root)
    walker.stray_text(root)
    verbs = tuple(walker.children(root))
    return Response(verbs=verbs, warnings=tuple(walker.warnings))


# --- validating and building ---------------------------------------------------------------------------------


def _show(raw: str) -> str:
    """An attribute value quoted for an error message, cut short if long."""
    return '"' + (raw if len(raw) <= 40 else raw[:40] + "...") + '"'


def _similar(name: str, candidates: Iterable[str]) -> str | None:
    """A candidate equal to ``name`` up to case, underscores and hyphens, for a "did you mean" hint."""
    key = name.replace("_", "").replace("-", "").lower()
    for candidate in sorted(candidates):
        if candidate.lower() == key:
            return candidate
    return None


_NESTING_CODES: Final[Mapping[str, int]] = {"Gather": GATHER_INVALID_NESTED_VERB, "Dial": DIAL_INVALID_NESTED_ELEMENT}
"""Twilio's own warning code for an element misplaced inside these; 12200 elsewhere."""


class _Walker:
    """Walks the element tree once, checking and building; collects warnings on the way.

    A builder returns ``None`` for an element that is skipped (with a warning); :meth:`children` drops those.
    """

    def __init__(self, lines: Mapping[ET.Element, int]) -> None:
        self.lines = lines
        self.warnings: list[TwimlWarning] = []

    def error(self, element: ET.Element, message: str, code: int = SCHEMA_VALIDATION) -> TwimlError:
        return TwimlError(code, message, self.lines.get(element))

    def warn(self, element: ET.Element, message: str, code: int = SCHEMA_VALIDATION) -> None:
        self.warnings.append(TwimlWarning(code, message, self.lines.get(element)))

    def attributes(self, element: ET.Element) -> dict[str, Any]:
        """Convert ``element``'s attributes through its table into dataclass keyword arguments; an unknown
        attribute or a bad value is a warning and left out (so the default applies), unless Twilio treats it
        as an error (a ``fatal`` attribute, or an element with an ``error_code``)."""
        tag = element.tag
        spec = ELEMENTS[tag]
        values: dict[str, Any] = {}
        for name, raw in element.attrib.items():
            attr = spec.attributes.get(name)
            if attr is None:
                if name in spec.ignored:
                    self.warn(element, f"<{tag}> attribute {name} is not supported by softswitch and was ignored")
                    continue
                hint = _similar(name, (*spec.attributes, *spec.ignored))
                message = f"<{tag}> does not allow the attribute {name}" + (f" (did you mean {hint}?)" if hint else "")
                if spec.error_code is not None:
                    raise self.error(element, message, spec.error_code)
                self.warn(element, message + "; it was ignored")
                continue
            try:
                values[attr.field] = attr.convert(raw)
            except BadValue as exc:
                message = f"<{tag}> attribute {name}={_show(raw)}: {exc}"
                if spec.error_code is not None or attr.fatal:
                    raise self.error(element, message, spec.error_code or attr.code) from None
                self.warn(element, message + "; the default was used", attr.code)
        for name in sorted(spec.required - element.attrib.keys()):
            message = f"<{tag}> is missing the required attribute {name}"
            raise self.error(element, message, spec.error_code or SCHEMA_VALIDATION)
        return values

    def misplaced(self, element: ET.Element, parent: str) -> None:
        """Warn that ``element`` may not appear in ``parent`` (it is skipped), or fail if it is a Twilio verb
        or noun that is valid there but that softswitch does not implement."""
        tag = element.tag
        if tag in UNSUPPORTED.get(parent, ()):
            kind = "verb" if parent == "Response" else f"noun of <{parent}>"
            raise self.error(element, f"<{tag}> is a Twilio {kind} softswitch does not support", VERB_NOT_SUPPORTED)
        if tag in ELEMENTS or tag in SSML_TAGS or any(tag in tags for tags in UNSUPPORTED.values()):
            message = f"<{tag}> is not allowed inside <{parent}>"
        else:
            hint = _similar(tag, ELEMENTS)
            message = f"unknown element <{tag}>" + (f" (did you mean <{hint}>?)" if hint else "")
        self.warn(element, message + "; it was skipped", _NESTING_CODES.get(parent, SCHEMA_VALIDATION))

    def build(self, element: ET.Element, parent: str) -> Any:
        """Check that ``element`` may appear in ``parent``, then validate and build it and its children;
        ``None`` if it was skipped."""
        if element.tag not in CHILDREN.get(parent, ()) or element.tag not in _CONTENT:
            self.misplaced(element, parent)
            return None
        return _CONTENT[element.tag](self, element, self.attributes(element))

    def children(self, element: ET.Element) -> list[Any]:
        built = (self.build(child, element.tag) for child in element)
        return [child for child in built if child is not None]

    def text(self, element: ET.Element) -> str:
        """The text of an element that takes text and no children, stripped (children are skipped)."""
        for child in element:
            self.misplaced(child, element.tag)
        return ((element.text or "") + "".join(child.tail or "" for child in element)).strip()

    def stray_text(self, element: ET.Element) -> None:
        """Warn about non-blank text in an element whose text means nothing."""
        pieces = [element.text or "", *(child.tail or "" for child in element)]
        if any(piece.strip() for piece in pieces):
            self.warn(element, f"text inside <{element.tag}> was ignored")


# One function per element: builds the dataclass from the converted attributes, handling text, children and
# the checks that span attributes and content. ``None`` skips the element (a warning says why).


def _say(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Say | None:
    if len(element) == 0:
        text = (element.text or "").strip()
        if not text:
            walker.warn(element, "the text of <Say> is empty; nothing was said", SAY_INVALID_TEXT)
        return Say(text=text, **kwargs)
    stack, readable = [element], True
    while stack:
        node = stack.pop()
        for child in node:
            if child.tag not in SSML_TAGS:
                walker.misplaced(child, node.tag)
                readable = False
            else:
                stack.append(child)
    if not readable:  # as on Twilio, a <Say> whose SSML cannot be read says nothing
        walker.warn(element, "the text of <Say> could not be read; it was skipped", SAY_INVALID_TEXT)
        return None
    walker.warn(element, "SSML inside <Say> is spoken as plain text; its markup was ignored")
    return Say(text=" ".join(_flatten(element).split()), **kwargs)


def _flatten(element: ET.Element) -> str:
    """The text of an SSML tree. Every tag boundary counts as a word break (generated SSML such as
    ``Hello<emphasis>really</emphasis>`` has no spaces); depth is bounded by :data:`MAX_DEPTH`."""
    parts = [element.text or ""]
    for child in element:
        parts += [" ", _flatten(child), " ", child.tail or ""]
    return "".join(parts)


def _play(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Play | None:
    url = walker.text(element)
    if not url and kwargs.get("digits") is None:
        walker.warn(element, "<Play> has neither a URL as its text nor a digits attribute; it was skipped")
        return None
    return Play(url=url, **kwargs)


def _pause(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Pause:
    walker.children(element)
    walker.stray_text(element)
    return Pause(**kwargs)


def _gather(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Gather:
    modes = kwargs.get("input", "dtmf").split()
    language = kwargs.get("language", "en-US")
    if "speech" in modes and language.lower() != "en-us":
        walker.warn(element, f"<Gather> language {language!r}: softswitch recognizes speech in en-US only; "
                             "this <Gather> recognizes en-US")
    children = tuple(walker.children(element))
    walker.stray_text(element)
    return Gather(children=children, **kwargs)


def _record(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Record:
    if kwargs.get("transcribe_callback") and "transcribe" not in kwargs:
        kwargs["transcribe"] = True  # a transcribeCallback asks for the transcription it is told
    walker.children(element)
    walker.stray_text(element)
    return Record(**kwargs)


def _redirect(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Redirect | None:
    url = walker.text(element)
    if not url:
        walker.warn(element, "<Redirect> has no URL as its text; it was skipped")
        return None
    return Redirect(url=url, **kwargs)


def _ignore_parameters(walker: _Walker, element: ET.Element) -> None:
    for child in element:
        if child.tag not in CHILDREN.get(element.tag, ()):
            walker.misplaced(child, element.tag)
            continue
        walker.attributes(child)
        walker.stray_text(child)
        for grandchild in child:
            walker.misplaced(grandchild, child.tag)
        walker.warn(child, f"<{child.tag}> inside <{element.tag}> is not supported by softswitch and was ignored")
    walker.stray_text(element)


def _hangup(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Hangup:
    _ignore_parameters(walker, element)
    return Hangup(**kwargs)


def _reject(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Reject:
    _ignore_parameters(walker, element)
    return Reject(**kwargs)


def _number(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Number | None:
    number = walker.text(element)
    if not number:
        walker.warn(element, "<Number> has no phone number as its text; it was skipped", DIAL_INVALID_PHONE_NUMBER)
        return None
    return Number(number=number, **kwargs)


def _sip(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Sip | None:
    uri = walker.text(element)
    if not uri.lower().startswith(("sip:", "sips:")):
        walker.warn(element, f"<Sip> {_show(uri)} is not a SIP URI (sip: or sips:); it was skipped",
                    DIAL_SIP_INVALID_URI)
        return None
    return Sip(uri=uri, **kwargs)


def _client(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Client:
    """The identity is the text, or the first ``<Identity>``; a bad one fails the document (31105, as Twilio)."""
    identities: list[str] = []
    parameters: list[tuple[str, str]] = []
    for child in element:
        if child.tag not in CHILDREN["Client"]:
            walker.misplaced(child, "Client")
        elif child.tag == "Identity":
            walker.attributes(child)
            identities.append(walker.text(child))
        elif (parameter := _parameter(walker, child)) is not None:
            parameters.append(parameter)
    raw = ((element.text or "") + "".join(child.tail or "" for child in element)).strip()
    if identities and (raw or len(identities) > 1):
        walker.warn(element, "<Client> has more than one identity (text or <Identity>); only the first "
                             "<Identity> is used")
    raw = identities[0] if identities else raw
    try:
        identity = client_identity(raw)
    except BadValue as exc:
        raise walker.error(element, f"<Client> identity {_show(raw)} {exc}", CLIENT_INVALID_NAME) from None
    return Client(identity=identity, parameters=tuple(parameters), **kwargs)


def _parameter(walker: _Walker, element: ET.Element) -> tuple[str, str] | None:
    """A ``<Parameter name value>`` as ``(name, value)``; ``None`` (with a warning) when it has no name."""
    values = walker.attributes(element)
    walker.children(element)
    walker.stray_text(element)
    name, value = values.get("name", ""), values.get("value", "")
    if not name.strip():
        walker.warn(element, "<Parameter> has no name; it was skipped")
        return None
    return name, value


def _connect(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Connect | None:
    nouns = walker.children(element)
    walker.stray_text(element)
    if not nouns:
        walker.warn(element, "<Connect> has no noun to connect to; it was skipped")
        return None
    if len(nouns) > 1:
        walker.warn(element, f"<Connect> takes one noun, found {len(nouns)}; only the first is used")
    if isinstance(nouns[0], Stream) and not nouns[0].url:
        walker.warn(element, "<Stream> in <Connect> has no url; it was skipped")
        return None
    return Connect(noun=nouns[0], **kwargs)


def _conversation(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Conversation:
    walker.children(element)
    walker.stray_text(element)
    return Conversation(**kwargs)


def _stream(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Stream:
    """A ``<Stream>`` with its ``<Parameter>`` as customParameters (the first 99; a later name replaces an
    earlier one's value, as in a JSON object); ``<Start>``/``<Connect>`` check that it has a url."""
    parameters: dict[str, str] = {}
    for child in element:
        if child.tag not in CHILDREN["Stream"]:
            walker.misplaced(child, "Stream")
        elif (parameter := _parameter(walker, child)) is not None:
            if len(parameters) >= MAX_STREAM_PARAMETERS and parameter[0] not in parameters:
                walker.warn(child, f"<Stream> takes at most {MAX_STREAM_PARAMETERS} <Parameter>; this one was "
                                   "ignored")
                continue
            parameters[parameter[0]] = parameter[1]
    walker.stray_text(element)
    return Stream(parameters=tuple(parameters.items()), **kwargs)


def _one_stream(walker: _Walker, element: ET.Element, need_url: bool) -> Stream | None:
    """The one ``<Stream>`` of a ``<Start>``/``<Stop>``/``<Connect>``; ``None`` (a warning says why) if there
    is none, or it has no url where one is needed."""
    nouns = [noun for noun in walker.children(element) if isinstance(noun, Stream)]
    walker.stray_text(element)
    if not nouns:
        walker.warn(element, f"<{element.tag}> has no <Stream>; it was skipped")
        return None
    if len(nouns) > 1:
        walker.warn(element, f"<{element.tag}> takes one <Stream>, found {len(nouns)}; only the first is used")
    if need_url and not nouns[0].url:
        walker.warn(element, f"<Stream> in <{element.tag}> has no url; it was skipped")
        return None
    return nouns[0]


def _start(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Start | None:
    stream = _one_stream(walker, element, need_url=True)
    return None if stream is None else Start(stream=stream, **kwargs)


def _stop(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Stop | None:
    stream = _one_stream(walker, element, need_url=False)
    return None if stream is None else Stop(stream=stream, **kwargs)


_CONTENT: Final[Mapping[str, Callable[[_Walker, ET.Element, dict[str, Any]], Any]]] = {
    "Say": _say,
    "Play": _play,
    "Pause": _pause,
    "Gather": _gather,
    "Record": _record,
    "Redirect": _redirect,
    "Hangup": _hangup,
    "Reject": _reject,
    "Number": _number,
    "Sip": _sip,
    "Client": _client,
    "Connect": _connect,
    "Conversation": _conversation,
    "Stream": _stream,
    "Start": _start,
    "Stop": _stop,
    **CALLCENTER_CONTENT,  # Dial, Conference, Queue, Enqueue, Leave
}
"""How to build each verb and noun in :data:`VERBS` and :data:`NOUNS`."""
