"""Parse and validate a whole TwiML document into :mod:`twiml.verbs` dataclasses, or fail with one error.

Pure: no I/O, no clock. The XML is read with defusedxml's expat parser with DTDs, entity declarations and
external references all refused, so the billion-laughs and XXE attacks are a 12100 error before anything is
expanded or fetched. The size is checked before parsing and the nesting depth while parsing.

Dispatch is by explicit tables: :data:`VERBS` (allowed directly under ``<Response>``), :data:`NOUNS`,
:data:`CHILDREN` (which tags may appear inside which) and, in :mod:`twiml.schema`, one attribute table per
element. A tag found in none of them is a 12200 error; nothing is looked up by reflection.

The whole document is validated before :func:`parse` returns, in document order, and the first problem raises
:class:`~twiml.errors.TwimlError` naming the element and attribute, with the line. Things accepted but not
acted on (a Twilio attribute softswitch does not implement yet, SSML markup inside ``<Say>``, a ``<Parameter>``
inside ``<Hangup>``/``<Reject>``, stray text between verbs) are reported in :attr:`Response.warnings`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from xml.parsers.expat import ErrorString

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from twiml.errors import PARSE_FAILURE, SCHEMA_VALIDATION, TwimlError
from twiml.schema import ELEMENTS, SSML_TAGS, UNSUPPORTED, BadValue
from twiml.verbs import (
    MAX_DIAL_NOUNS,
    Connect,
    Conversation,
    Dial,
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
    Verb,
)

__all__ = ["CHILDREN", "DEFAULT_MAX_BYTES", "MAX_DEPTH", "NOUNS", "VERBS", "Response", "TwimlError", "parse"]

DEFAULT_MAX_BYTES: Final = 64 * 1024
MAX_DEPTH: Final = 32
"""Deepest element nesting accepted; real TwiML needs about six (Response, Gather, Say, SSML)."""

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
}
"""The verbs allowed directly under ``<Response>``."""

NOUNS: Final[Mapping[str, type[Number | Sip | Conversation]]] = {
    "Number": Number,
    "Sip": Sip,
    "Conversation": Conversation,
}
"""The nouns, each allowed only inside its verb (see :data:`CHILDREN`)."""

CHILDREN: Final[Mapping[str, frozenset[str]]] = {
    "Response": frozenset(VERBS),
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset({"Number", "Sip"}),
    "Connect": frozenset({"Conversation"}),
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
        The verbs in document order, and warnings for anything accepted but ignored.

    Raises:
        TwimlError: 12100 if the document is too big, not well-formed XML, has a DTD or entities, is nested
            too deeply, or its root is not ``<Response>``; 12200 if it is XML but not valid TwiML.
    """
    root, lines = _read_xml(document, max_bytes)
    if root.tag != "Response":
        raise TwimlError(PARSE_FAILURE, f"the root element must be <Response>, not <{root.tag}>", lines.get(root))
    walker = _Walker(lines)
    walker.attributes(root)
    walker.stray_text(root)
    verbs = tuple(walker.build(child, "Response") for child in root)
    return Response(verbs=verbs, warnings=tuple(walker.warnings))


# --- reading the XML safely ----------------------------------------------------------------------------------


class _LineTreeBuilder(ET.TreeBuilder):
    """A tree builder that remembers each element's line and refuses absurd nesting while parsing."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[ET.Element, int] = {}
        self.depth = 0
        self.current_line: Callable[[], int] = lambda: 0

    def start(self, tag: Any, attrs: Any, /) -> ET.Element:
        self.depth += 1
        line = self.current_line()
        if self.depth > MAX_DEPTH:
            # Raised inside expat's callback; pyexpat stops and re-raises it from feed().
            raise TwimlError(PARSE_FAILURE, f"elements are nested more than {MAX_DEPTH} deep", line)
        element = super().start(tag, attrs)
        self.lines[element] = line
        return element

    def end(self, tag: Any, /) -> ET.Element:
        self.depth -= 1
        return super().end(tag)


def _read_xml(document: str | bytes, max_bytes: int) -> tuple[ET.Element, dict[ET.Element, int]]:
    size = len(document.encode("utf-8", "surrogatepass")) if isinstance(document, str) else len(document)
    if size > max_bytes:
        raise TwimlError(PARSE_FAILURE, f"the document is {size} bytes, more than the {max_bytes} allowed")
    if not document.strip():
        raise TwimlError(PARSE_FAILURE, "the document is empty")
    builder = _LineTreeBuilder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    expat = parser.parser
    builder.current_line = lambda: int(expat.CurrentLineNumber)
    try:
        parser.feed(document)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        line, _column = exc.position
        raise TwimlError(PARSE_FAILURE, f"not well-formed XML: {ErrorString(exc.code)}", line) from None
    except DTDForbidden:
        message = "a DOCTYPE (DTD) is not allowed in TwiML; it was not processed"
        raise TwimlError(PARSE_FAILURE, message, builder.current_line()) from None
    except EntitiesForbidden:
        message = "entity declarations are not allowed in TwiML; nothing was expanded"
        raise TwimlError(PARSE_FAILURE, message, builder.current_line()) from None
    except ExternalReferenceForbidden:
        message = "external references are not allowed in TwiML; nothing was fetched"
        raise TwimlError(PARSE_FAILURE, message, builder.current_line()) from None
    except (UnicodeError, LookupError) as exc:
        raise TwimlError(PARSE_FAILURE, f"the document's text cannot be decoded: {exc}") from None
    return root, builder.lines


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


class _Walker:
    """Walks the element tree once, checking and building; collects warnings on the way."""

    def __init__(self, lines: Mapping[ET.Element, int]) -> None:
        self.lines = lines
        self.warnings: list[str] = []

    def error(self, element: ET.Element, message: str) -> TwimlError:
        return TwimlError(SCHEMA_VALIDATION, message, self.lines.get(element))

    def warn(self, element: ET.Element, message: str) -> None:
        line = self.lines.get(element)
        self.warnings.append(message if line is None else f"line {line}: {message}")

    def attributes(self, element: ET.Element) -> dict[str, Any]:
        """Convert ``element``'s attributes through its table into dataclass keyword arguments."""
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
                message = f"<{tag}> does not allow the attribute {name}"
                raise self.error(element, message + (f" (did you mean {hint}?)" if hint else ""))
            try:
                values[attr.field] = attr.convert(raw)
            except BadValue as exc:
                raise self.error(element, f"<{tag}> attribute {name}={_show(raw)}: {exc}") from None
        for name in sorted(spec.required - element.attrib.keys()):
            raise self.error(element, f"<{tag}> is missing the required attribute {name}")
        return values

    def misplaced(self, element: ET.Element, parent: str) -> TwimlError:
        tag = element.tag
        if tag in ELEMENTS or tag in SSML_TAGS:
            return self.error(element, f"<{tag}> is not allowed inside <{parent}>")
        if tag in UNSUPPORTED:
            return self.error(element, f"<{tag}> is a Twilio element softswitch does not support")
        hint = _similar(tag, ELEMENTS)
        return self.error(element, f"unknown element <{tag}>" + (f" (did you mean <{hint}>?)" if hint else ""))

    def build(self, element: ET.Element, parent: str) -> Any:
        """Check that ``element`` may appear in ``parent``, then validate and build it and its children."""
        if element.tag not in CHILDREN.get(parent, ()) or element.tag not in _CONTENT:
            raise self.misplaced(element, parent)
        return _CONTENT[element.tag](self, element, self.attributes(element))

    def children(self, element: ET.Element) -> list[Any]:
        return [self.build(child, element.tag) for child in element]

    def text(self, element: ET.Element) -> str:
        """The text of an element that takes text and no children, stripped."""
        for child in element:
            raise self.misplaced(child, element.tag)
        return (element.text or "").strip()

    def stray_text(self, element: ET.Element) -> None:
        """Warn about non-blank text in an element whose text means nothing."""
        pieces = [element.text or "", *(child.tail or "" for child in element)]
        if any(piece.strip() for piece in pieces):
            self.warn(element, f"text inside <{element.tag}> was ignored")


# One function per element: builds the dataclass from the converted attributes, handling text, children and
# the checks that span attributes and content.


def _say(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Say:
    if len(element) == 0:
        return Say(text=(element.text or "").strip(), **kwargs)
    stack = [element]
    while stack:
        node = stack.pop()
        for child in node:
            if child.tag not in SSML_TAGS:
                raise walker.misplaced(child, node.tag)
            stack.append(child)
    walker.warn(element, "SSML inside <Say> is spoken as plain text; its markup was ignored")
    return Say(text=" ".join(_flatten(element).split()), **kwargs)


def _flatten(element: ET.Element) -> str:
    """The text of an SSML tree. Every tag boundary counts as a word break (generated SSML such as
    ``Hello<emphasis>really</emphasis>`` has no spaces); depth is bounded by :data:`MAX_DEPTH`."""
    parts = [element.text or ""]
    for child in element:
        parts += [" ", _flatten(child), " ", child.tail or ""]
    return "".join(parts)


def _play(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Play:
    url = walker.text(element)
    if not url and kwargs.get("digits") is None:
        raise walker.error(element, "<Play> needs a URL as its text, or a digits attribute")
    return Play(url=url, **kwargs)


def _pause(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Pause:
    walker.children(element)
    walker.stray_text(element)
    return Pause(**kwargs)


def _gather(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Gather:
    if "speech" in kwargs.get("input", "").split():
        raw = element.attrib["input"]
        raise walker.error(element, f"<Gather> attribute input={_show(raw)}: speech input is not supported yet")
    children = tuple(walker.children(element))
    walker.stray_text(element)
    return Gather(children=children, **kwargs)


def _record(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Record:
    if kwargs.get("transcribe"):
        raw = element.attrib["transcribe"]
        raise walker.error(element, f"<Record> attribute transcribe={_show(raw)}: transcription not supported")
    walker.children(element)
    walker.stray_text(element)
    return Record(**kwargs)


def _redirect(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Redirect:
    url = walker.text(element)
    if not url:
        raise walker.error(element, "<Redirect> needs a URL as its text")
    return Redirect(url=url, **kwargs)


def _ignore_parameters(walker: _Walker, element: ET.Element) -> None:
    for child in element:
        if child.tag not in CHILDREN.get(element.tag, ()):
            raise walker.misplaced(child, element.tag)
        walker.attributes(child)
        walker.stray_text(child)
        for grandchild in child:
            raise walker.misplaced(grandchild, child.tag)
        walker.warn(child, f"<{child.tag}> inside <{element.tag}> is not supported by softswitch and was ignored")
    walker.stray_text(element)


def _hangup(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Hangup:
    _ignore_parameters(walker, element)
    return Hangup(**kwargs)


def _reject(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Reject:
    _ignore_parameters(walker, element)
    return Reject(**kwargs)


def _dial(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Dial:
    nouns = walker.children(element)
    text = ((element.text or "") + "".join(child.tail or "" for child in element)).strip()
    if text and nouns:
        raise walker.error(element, "<Dial> has both a number as text and nested nouns; use one or the other")
    if text:
        nouns = [Number(number=text)]
    if not nouns:
        raise walker.error(element, "<Dial> has nothing to dial: give a number as its text or nest <Number>/<Sip>")
    if len(nouns) > MAX_DIAL_NOUNS:
        raise walker.error(element, f"<Dial> has {len(nouns)} nouns; at most {MAX_DIAL_NOUNS} are allowed")
    return Dial(nouns=tuple(nouns), **kwargs)


def _number(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Number:
    number = walker.text(element)
    if not number:
        raise walker.error(element, "<Number> needs a phone number as its text")
    return Number(number=number, **kwargs)


def _sip(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Sip:
    uri = walker.text(element)
    if not uri.lower().startswith(("sip:", "sips:")):
        raise walker.error(element, "<Sip> needs a SIP URI starting with sip: or sips: as its text")
    return Sip(uri=uri, **kwargs)


def _connect(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Connect:
    nouns = walker.children(element)
    walker.stray_text(element)
    if len(nouns) != 1:
        raise walker.error(element, f"<Connect> needs exactly one nested noun, found {len(nouns)}")
    return Connect(noun=nouns[0], **kwargs)


def _conversation(walker: _Walker, element: ET.Element, kwargs: dict[str, Any]) -> Conversation:
    walker.children(element)
    walker.stray_text(element)
    return Conversation(**kwargs)


_CONTENT: Final[Mapping[str, Callable[[_Walker, ET.Element, dict[str, Any]], Any]]] = {
    "Say": _say,
    "Play": _play,
    "Pause": _pause,
    "Gather": _gather,
    "Record": _record,
    "Redirect": _redirect,
    "Hangup": _hangup,
    "Reject": _reject,
    "Dial": _dial,
    "Number": _number,
    "Sip": _sip,
    "Connect": _connect,
    "Conversation": _conversation,
}
"""How to build each verb and noun in :data:`VERBS` and :data:`NOUNS`."""
