"""Builders for ``<Dial>`` and the call-center elements (``<Conference>``, ``<Queue>``, ``<Enqueue>``,
``<Leave>``), plugged into :mod:`twiml.parse`'s tables (:data:`CALLCENTER_VERBS`, :data:`CALLCENTER_NOUNS`,
:data:`CALLCENTER_CONTENT`). A ``<Dial>`` holding a ``<Conference>`` or ``<Queue>`` holds nothing else.

Errors (the document fails, as a missing phone number would not): a ``<Conference>``, ``<Queue>`` or
``<Enqueue>`` without a name as its text (12200; 13750 for an ``<Enqueue workflowSid>`` without one, since
TaskRouter is not supported), an ``<Enqueue>`` name longer than Twilio's 64 characters (12200), and a ``<Dial>``
mixing a ``<Conference>`` or ``<Queue>`` with any other noun (12200).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from twiml.errors import DIAL_TOO_MANY_URIS, SCHEMA_VALIDATION, VERB_NOT_SUPPORTED, TwimlError
from twiml.verbs import MAX_DIAL_NOUNS, Dial, Number
from twiml.verbs_callcenter import MAX_QUEUE_NAME, Conference, Enqueue, Leave, Queue

__all__ = ["CALLCENTER_CONTENT", "CALLCENTER_NOUNS", "CALLCENTER_VERBS", "Walker"]


class Walker(Protocol):
    """What these builders use of :mod:`twiml.parse`'s tree walker (kept structural: no import cycle)."""

    def error(self, element: ET.Element, message: str, code: int = ...) -> TwimlError: ...
    def warn(self, element: ET.Element, message: str, code: int = ...) -> None: ...
    def misplaced(self, element: ET.Element, parent: str) -> None: ...
    def children(self, element: ET.Element) -> list[Any]: ...
    def text(self, element: ET.Element) -> str: ...
    def stray_text(self, element: ET.Element) -> None: ...


def _name(walker: Walker, element: ET.Element, what: str) -> str:
    """The element's text, stripped, as the name of ``what``; an empty one fails the document."""
    name = walker.text(element)
    if not name:
        raise walker.error(element, f"<{element.tag}> has no {what} name as its text")
    return name


def _conference(walker: Walker, element: ET.Element, kwargs: dict[str, Any]) -> Conference:
    return Conference(name=_name(walker, element, "conference room"), **kwargs)


def _queue(walker: Walker, element: ET.Element, kwargs: dict[str, Any]) -> Queue:
    return Queue(name=_name(walker, element, "queue"), **kwargs)


def _enqueue(walker: Walker, element: ET.Element, kwargs: dict[str, Any]) -> Enqueue:
    """The queue name is the text; nested ``<Task>`` (TaskRouter) is ignored with a warning."""
    for child in element:
        if child.tag == "Task":
            walker.warn(child, "<Task> inside <Enqueue> (TaskRouter) is not supported by softswitch and was ignored")
        else:
            walker.misplaced(child, "Enqueue")
    name = ((element.text or "") + "".join(child.tail or "" for child in element)).strip()
    if not name and "workflowSid" in element.attrib:
        raise walker.error(element, "<Enqueue workflowSid> without a queue name needs TaskRouter, which softswitch "
                                    "does not support", VERB_NOT_SUPPORTED)
    if not name:
        raise walker.error(element, "<Enqueue> has no queue name as its text")
    if len(name) > MAX_QUEUE_NAME:
        raise walker.error(element, f"<Enqueue> queue name is {len(name)} characters long, more than "
                                    f"{MAX_QUEUE_NAME}")
    return Enqueue(name=name, **kwargs)


def _leave(walker: Walker, element: ET.Element, kwargs: dict[str, Any]) -> Leave:
    walker.children(element)  # none are allowed: each is a warning
    walker.stray_text(element)
    return Leave(**kwargs)


def _dial(walker: Walker, element: ET.Element, kwargs: dict[str, Any]) -> Dial | None:
    nouns = walker.children(element)
    _one_room(walker, element, nouns)
    text = ((element.text or "") + "".join(child.tail or "" for child in element)).strip()
    if text and nouns:
        walker.warn(element, "<Dial> has both a number as text and nested nouns; the text was ignored")
    elif text:
        nouns = [Number(number=text)]
    if not nouns:
        walker.warn(element, "<Dial> has nothing to dial; it was skipped")
        return None
    if len(nouns) > MAX_DIAL_NOUNS:
        walker.warn(element, f"<Dial> has {len(nouns)} nouns; only the first {MAX_DIAL_NOUNS} are rung",
                    DIAL_TOO_MANY_URIS)
        nouns = nouns[:MAX_DIAL_NOUNS]
    return Dial(nouns=tuple(nouns), **kwargs)


def _one_room(walker: Walker, element: ET.Element, nouns: Sequence[object]) -> None:
    """Fail unless a ``<Dial>`` with a ``<Conference>`` or ``<Queue>`` among ``nouns`` has only that noun
    (Twilio: one conference or queue per ``<Dial>``, never rung alongside numbers)."""
    rooms = [noun for noun in nouns if isinstance(noun, Conference | Queue)]
    if rooms and len(nouns) > 1:
        kind = type(rooms[0]).__name__
        raise walker.error(element, f"<Dial> with a <{kind}> must hold only that one noun, found {len(nouns)}",
                           SCHEMA_VALIDATION)


CALLCENTER_VERBS: Final[Mapping[str, type[Enqueue | Leave]]] = {"Enqueue": Enqueue, "Leave": Leave}
"""The call-center verbs allowed directly under ``<Response>``."""

CALLCENTER_NOUNS: Final[Mapping[str, type[Conference | Queue]]] = {"Conference": Conference, "Queue": Queue}
"""The call-center nouns, allowed only inside ``<Dial>``."""

CALLCENTER_CONTENT: Final[Mapping[str, Callable[[Walker, ET.Element, dict[str, Any]], Any]]] = {
    "Dial": _dial,
    "Conference": _conference,
    "Queue": _queue,
    "Enqueue": _enqueue,
    "Leave": _leave,
}
"""How to build ``<Dial>`` and each call-center verb and noun."""
