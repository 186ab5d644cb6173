"""Shared fixtures: a webhook sink, a running switch (a real `softswitch serve` process), and the bench's two HTTP
servers for the bench phases' smoke tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.tools.bench.common import TwimlApp, WebhookReceiver
from tests.peers.harness import SwitchProcess, WebhookSink

INBOUND_NUMBER = "+15550100"


@pytest.fixture(scope="module")
def sink() -> Iterator[WebhookSink]:
    hooks = WebhookSink().start()
    yield hooks
    hooks.stop()


@pytest.fixture(scope="module")
def app(sink: WebhookSink) -> WebhookSink:
    """The module's sink in the role of the voice app (TwiML documents, actions, callbacks)."""
    return sink


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[SwitchProcess]:
    """One switch (2 workers) shared by a module's call-flow tests; each test uses its own calls."""
    workdir: Path = tmp_path_factory.mktemp("switch")
    proc = SwitchProcess(
        workdir,
        workers=2,
        numbers=[{"number": INBOUND_NUMBER, "status_callback": sink.url("/inbound-status")}],
    )
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


@pytest.fixture
def servers() -> Iterator[tuple[WebhookReceiver, TwimlApp]]:
    """The bench's webhook receiver and TwiML app, started for one test."""
    receiver: WebhookReceiver = WebhookReceiver().start()
    app: TwimlApp = TwimlApp().start()
    yield receiver, app
    receiver.stop()
    app.stop()
