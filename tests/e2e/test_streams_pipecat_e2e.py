"""A bot written with pipecat (PyPI `pipecat-ai`), its Twilio serializer and WebSocket transport, against the switch.

pipecat-ai is not a dependency (1.14 pulls onnxruntime, numba/llvmlite and openai: a 0.5 GB environment), so this
test runs when PIPECAT_PYTHON names an interpreter that has `pipecat-ai[websocket]` and `uvicorn`, and skips
otherwise.  The bot is pipecat's own Twilio recipe, unchanged: FastAPI, `parse_telephony_websocket`,
`TwilioFrameSerializer` (its auto hang-up pointed at the switch's REST API with `base_url`) and
`FastAPIWebsocketTransport`.  It hears the caller's tone, gets a DTMF digit, answers with a tone the phone hears,
and hangs the call up through ``POST Calls/{Sid}.json``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from twilio.twiml.voice_response import VoiceResponse

from media.audio import read_wav
from media.tones import band_energy_ratio
from tests.e2e.test_streams_e2e import BOT_HZ, CALLER_HZ, _call, _loud, _phone
from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess, free_tcp_port, wait_until

pytestmark = pytest.mark.e2e


PIPECAT_BOT = '''
import asyncio, json, sys
import numpy as np, uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, InputDTMFFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

port, report, base_url, account_sid, auth_token = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
app = FastAPI()

def tell(**fields):
    with open(report, "a") as out:
        out.write(json.dumps(fields) + "\\n")

class ToneBot(FrameProcessor):
    """Listens for a second, says what it heard, answers with 2 s of 1000 Hz, then ends (hanging up)."""
    def __init__(self):
        super().__init__()
        self.heard, self.answered, self.task = bytearray(), False, None
    async def process_frame(self, frame, direction):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.heard += frame.audio
            if not self.answered and len(self.heard) >= 2 * frame.sample_rate:
                self.answered = True
                samples = np.frombuffer(bytes(self.heard), dtype=np.int16).astype(float)
                spectrum = np.abs(np.fft.rfft(samples))
                tell(heard_hz=float(np.fft.rfftfreq(len(samples), 1 / frame.sample_rate)[spectrum.argmax()]))
                t = np.arange(2 * 8000) / 8000
                tone = (np.sin(2 * np.pi * 1000 * t) * 16000).astype(np.int16).tobytes()
                await self.push_frame(OutputAudioRawFrame(audio=tone, sample_rate=8000, num_channels=1))
                end = lambda: asyncio.ensure_future(self.task.queue_frame(EndFrame()))
                asyncio.get_running_loop().call_later(3.0, end)
        elif isinstance(frame, InputDTMFFrame):
            tell(dtmf=frame.button.value)
        else:
            await self.push_frame(frame, direction)

@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    kind, call = await parse_telephony_websocket(websocket)
    tell(kind=kind, stream_id=call["stream_id"], call_id=call["call_id"], body=call["body"])
    serializer = TwilioFrameSerializer(stream_sid=call["stream_id"], call_sid=call["call_id"],
                                       account_sid=account_sid, auth_token=auth_token, base_url=base_url)
    transport = FastAPIWebsocketTransport(websocket, FastAPIWebsocketParams(
        audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer))
    bot = ToneBot()
    task = PipelineTask(Pipeline([transport.input(), bot, transport.output()]),
                        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000))
    bot.task = task
    await PipelineRunner(handle_sigint=False).run(task)
    tell(done=True)

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
'''


def test_a_pipecat_twilio_bot_works_unchanged(switch: SwitchProcess, tmp_path: Path) -> None:
    python = os.environ.get("PIPECAT_PYTHON")
    if not python:
        pytest.skip("PIPECAT_PYTHON names no interpreter with pipecat-ai[websocket] and uvicorn")
    script, report = tmp_path / "bot.py", tmp_path / "report.jsonl"
    script.write_text(PIPECAT_BOT)
    port = free_tcp_port()
    bot = subprocess.Popen([python, str(script), str(port), str(report), switch.base_url, ACCOUNT_SID, AUTH_TOKEN],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _listening(port), 60, "the pipecat bot listening")
        response = VoiceResponse()
        response.connect().stream(url=f"ws://127.0.0.1:{port}/ws").parameter(name="from_number", value="+15550199")
        heard = tmp_path / "heard.wav"
        with _phone(heard, "--dtmf", "7", "--dtmf-after", "0.5") as phone:
            sid = _call(switch, phone, response)
            phone.wait_for("hangup", timeout=30)  # pipecat's auto hang-up: POST Calls/{sid}.json Status=completed
            phone.wait(10)
        wait_until(lambda: report.exists() and '"done"' in report.read_text(), 15, "the pipeline's end")
    finally:
        bot.terminate()
        try:
            output = bot.communicate(timeout=5)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:  # uvicorn waiting on a socket: its process, ended by its pid
            bot.kill()
            output = bot.communicate(timeout=5)[0].decode(errors="replace")
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    facts = {k: v for line in lines for k, v in line.items()}
    assert (facts["kind"], facts["call_id"], facts["body"]) == ("twilio", sid, {"from_number": "+15550199"}), output
    assert abs(facts["heard_hz"] - CALLER_HZ) < 10
    assert facts["dtmf"] == "7"
    samples, rate = read_wav(heard)
    loud = _loud(samples, rate)
    assert len(loud) >= 1.5 * rate and band_energy_ratio(loud, rate, BOT_HZ) > 0.8
    assert switch.client().calls(sid).fetch().status == "completed"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
