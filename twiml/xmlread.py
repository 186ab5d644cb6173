"""Reading a TwiML document's XML safely: defusedxml's expat parser with DTDs, entity declarations and external
references refused, a size limit before parsing, a depth limit while parsing, and each element's line kept for
the warnings and errors (:mod:`twiml.parse` validates what comes out)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, Final
from xml.parsers.expat import ErrorString

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from twiml.errors import PARSE_FAILURE, TwimlError

MAX_DEPTH: Final = 32
"""Deepest element nesting accepted; real TwiML needs about six (Response, Gather, Say, SSML)."""


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


def read_xml(document: str | bytes, max_bytes: int) -> tuple[ET.Element, dict[ET.Element, int]]:
    """The document's root element and each element's line; TwimlError (12100) for anything else."""
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
