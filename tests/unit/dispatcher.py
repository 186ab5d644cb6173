"""A webhook dispatcher for unit tests: it records what the renderers send, in the real store, and delivers nothing."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from switch.core.store import Store
from switch.core.webhooks import BodyFormat


@dataclass(frozen=True)
class Sent:
    """One webhook handed to the dispatcher."""

    call_sid: str
    url: str
    method: str
    params: list[tuple[str, str]]
    body_format: str = "form"
    document: dict[str, Any] | None = None
    retries: int | None = None
    event: str | None = None


class RecordingDispatcher:
    """`WebhookDispatcher`'s `send`/`sent`/`count` over a real `Store` (the one record of what was sent)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hooks: list[Sent] = []

    def send(self, call_sid: str, url: str, method: str, params: list[tuple[str, str]],
             body_format: BodyFormat = "form",
             *, document: dict[str, Any] | None = None, retries: int | None = None, event: str | None = None) -> None:
        self.store.add_webhook(call_sid, url, method.upper(), params, body_format, retries, document, event)
        self.hooks.append(Sent(call_sid, url, method.upper(), params, body_format, document, retries, event))

    def sent(self, call_sid: str, url: str, event: str) -> bool:
        return self.store.webhook_sent(call_sid, url, event)

    def count(self, call_sid: str, url: str | None, events: Collection[str] | None = None) -> int:
        return self.store.count_webhooks(call_sid, url, events)
