"""The worker's bridge audit (switch.worker.bridge_audit) on a real pjmedia conference bridge.

pjsua2 runs in a child process (one Endpoint per process, and the test process has none): two tone generators
stand in for two legs' ports, `MediaManager` bridges them (and then records one), and one connection is then
dropped behind its back, as pjmedia dropped one in the intermittent silent-bridge failures.  The audit must
leave a queued connect alone, make the lost connection again at its second sighting, and say so in the log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

SCRIPT = textwrap.dedent("""
    import json, logging, time
    from switch.worker.bridge_audit import BridgeAudit
    from switch.worker.media import MediaManager
    from switch.worker.pjengine import pj
    from switch.worker.pjmedia import endpoint_config

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    ep = pj.Endpoint()
    ep.libCreate()
    ep.libInit(endpoint_config("audit-test", 0))
    ep.libStart()
    ep.audDevManager().setNullDev()

    def settle():  # a few ticks of the conference clock: queued connects and disconnects are applied
        end = time.monotonic() + 0.15
        while time.monotonic() < end:
            ep.libHandleEvents(10)

    a, b = pj.ToneGenerator(), pj.ToneGenerator()
    a.createToneGenerator()
    b.createToneGenerator()
    media = MediaManager(lambda event: None, lambda command: None)
    media.set_port("A", a)
    media.set_port("B", b)
    audit = BridgeAudit(media)
    media.bridge("br1", "A", "B")
    out = {"slots": [a.getPortId(), b.getPortId()], "queued": audit.check()}
    settle()

    def listeners():
        infos = [a.getPortInfo(), b.getPortInfo()]
        return [sorted(info.listeners) for info in infos]

    out["bridged"] = listeners()
    out["clean"] = audit.check()  # both applied now: no suspect left from the queued ones
    b.stopTransmit(a)  # pjmedia loses B -> A
    settle()
    out["lost"] = listeners()
    out["first_sighting"] = audit.check()
    out["second_sighting"] = audit.check()
    settle()
    out["repaired"] = listeners()
    out["after"] = [audit.check(), audit.check(), audit.repairs]
    import tempfile, pathlib
    media.record("w0:r1", str(pathlib.Path(tempfile.mkdtemp()) / "rec"), ["A"])
    rec = media.recordings["w0:r1"]
    settle()
    audit.check()  # applied: nothing suspect
    a.stopTransmit(rec.ports[0])
    settle()
    info = a.getPortInfo()
    lost = [slot for slot in info.listeners if slot == rec.ports[0].getPortId()]
    repaired = [audit.check(), audit.check()]
    settle()
    info = a.getPortInfo()
    out["channel"] = {"lost": lost, "repaired": repaired, "slot": rec.ports[0].getPortId(),
                      "listening": rec.ports[0].getPortId() in list(info.listeners)}
    media.stop_record("w0:r1", "done")
    print("RESULT " + json.dumps(out), flush=True)
    media.unbridge("A")
    settle()
    del media, audit, a, b
    ep.libDestroy()
""")


def test_a_lost_bridge_direction_is_made_again_at_its_second_sighting() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-2000:]
    out = json.loads(lines[0].removeprefix("RESULT "))
    a, b = out["slots"]
    assert out["queued"] == 0  # just queued, not applied yet: no suspect, nothing made twice
    assert (out["bridged"], out["clean"]) == ([[b], [a]], 0)
    assert out["lost"] == [[b], []]
    assert (out["first_sighting"], out["second_sighting"]) == (0, 1)
    assert out["repaired"] == [[b], [a]]
    assert out["after"] == [0, 0, 1]
    warnings = [line for line in run.stderr.splitlines() if line.startswith("WARNING")]
    # a recording channel's connection, lost and made again the same way
    tap = out["channel"].pop("slot")
    assert out["channel"] == {"lost": [], "repaired": [0, 1], "listening": True}
    assert warnings == [
        f"WARNING bridge B -> A: conference connection {b} -> {a} missing for a second; made again",
        f"WARNING recording w0:r1 channel 1: conference connection {a} -> {tap} missing for a second; made again"]
