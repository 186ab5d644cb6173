"""The twilio-node tier: the official Node.js client (npm `twilio`, pinned in tests/node/package-lock.json and
installed by `make node-deps`) drives a live switch through tests/node/twilio_node.test.mjs, under Node's own
test runner.

This test starts the switch and the SIP peers the Node file calls (a lab phone that answers with a tone, one
that only rings), passes their addresses in the environment, and asserts node's exit status: the Node file holds
the assertions (create, fetch, list with the client's paging and Date filters, update, remove, recordings,
numbers, and `twilio.validateRequest` on every webhook).  Node's report is shown when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess
from tests.peers.phone import REPO, PhoneProcess

NODE_DIR = REPO / "tests" / "node"
TEST_FILE = NODE_DIR / "twilio_node.test.mjs"
NODE_TIMEOUT = 240.0  # seconds: the file's calls take about 10
TAP_COUNTS = ("tests", "suites", "pass", "fail", "cancelled", "skipped", "todo")  # node's closing TAP comments


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    """A switch of its own: the Node file counts every call it has."""
    proc = SwitchProcess(tmp_path_factory.mktemp("twilio-node"), workers=1)
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, f"switch exited with {code}:\n{proc.log()}"


def _node() -> str:
    node = shutil.which("node")
    assert node is not None, "node is not installed: `make node-deps` installs it"
    installed = NODE_DIR / "node_modules" / "twilio" / "package.json"
    assert installed.exists(), "tests/node/node_modules has no twilio: run `make node-deps` (npm ci in tests/node)"
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["twilio"]
    assert json.loads(installed.read_text())["version"] == pinned, "stale tests/node/node_modules: `make node-deps`"
    return node


def test_twilio_node_client_against_the_switch(switch: SwitchProcess, tmp_path: Path) -> None:
    node = _node()
    with PhoneProcess(["--answer", "auto", "--tone", "440"], max_seconds=NODE_TIMEOUT) as answerer, \
         PhoneProcess(["--answer", "ignore"], max_seconds=NODE_TIMEOUT) as ringer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
        env.update({
            "SOFTSWITCH_BASE_URL": switch.base_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "SOFTSWITCH_SIP": switch.sip_uri_host,
            "ANSWER_URI": answerer.uri("bob"),
            "RING_URI": ringer.uri("carol"),
            "LABPHONE": json.dumps([sys.executable, "-m", "switch.worker.labphone"]),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        })
        result = subprocess.run(
            [node, "--test", "--test-reporter=tap", str(TEST_FILE)], cwd=NODE_DIR, env=env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=NODE_TIMEOUT,
        )
    report = f"node exited with {result.returncode}\n{result.stdout}\n{result.stderr}"
    (tmp_path / "node-report.txt").write_text(report)
    assert result.returncode == 0, report + "\n--- switch log ---\n" + switch.log()[-20000:]
    # The whole file ran: every test in it passed, none skipped or left out.
    tests = sum(1 for line in TEST_FILE.read_text().splitlines() if line.startswith("test("))
    counts = dict(line[2:].split(" ", 1) for line in result.stdout.splitlines()
                  if line.startswith("# ") and line[2:].split(" ", 1)[0] in TAP_COUNTS)
    assert counts == {"tests": str(tests), "suites": "0", "pass": str(tests), "fail": "0", "cancelled": "0",
                      "skipped": "0", "todo": "0"}, report
