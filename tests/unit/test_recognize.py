"""The recognizer interface (media.recognize): hints, stability, the streaming upsampler, the HTTP recognizer
against a local OpenAI-style endpoint, the offline recognizer on silence and on a phrase, the Gather's speech
listener fed frames without a clock, transcriptions in the store, and the `[speech]` config table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from media.audio import read_wav, resample, to_pcm16, write_wav
from media.recognize import (
    HttpRecognizer,
    RecognizeError,
    Result,
    Stream,
    Upsampler,
    parse_hints,
    stability,
    transcribe,
)
from media.recognize_sphinx import SpeechActivity, SphinxRecognizer, confidence
from media.speech import Speech
from media.ulaw import ulaw_encode
from switch.core.config import load_config
from switch.core.config_speech import SpeechConfig
from switch.core.errors import ConfigError
from switch.core.recording_model import Recording, RecordingSource, RecordingStatus
from switch.core.store import Store
from switch.core.transcriptions import Transcriptions, TranscriptionStatus, make_recognizer
from switch.verbs.gather_speech import SpeechListener
from switch.workers.media_taps import AudioFrame

HINTS = ("check my balance", "pay my bill", "talk to an agent", "technical support")


@pytest.fixture(scope="module")
def recognizer() -> SphinxRecognizer:
    return SphinxRecognizer()


@pytest.fixture(scope="module")
def balance(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """'check my balance' (espeak-ng, `man`) as 8 kHz PCM16, 1 s of silence either side."""
    path = asyncio.run(Speech(tmp_path_factory.mktemp("say")).synthesize("check my balance", "man"))
    samples, _ = read_wav(path)
    return np.concatenate([np.zeros(8000, np.int16), samples, np.zeros(8000, np.int16)]).tobytes()


def _frames(pcm: bytes, end: bool = True) -> asyncio.Queue[AudioFrame | None]:
    """`pcm` as a tap's 20 ms μ-law frames, then None (the tap's end) when `end`."""
    queue: asyncio.Queue[AudioFrame | None] = asyncio.Queue()
    for seq, start in enumerate(range(0, len(pcm), 320)):
        queue.put_nowait(AudioFrame("inbound", seq, seq * 20, ulaw_encode(pcm[start:start + 320].ljust(320, b"\0"))))
    if end:
        queue.put_nowait(None)
    return queue


# --- pure helpers ---------------------------------------------------------------------------------------------

def test_hints_are_phrases_of_lower_case_words_without_class_tokens_or_repeats() -> None:
    assert parse_hints("Check my balance, PAY my bill,, $OOV_CLASS_DIGIT_SEQUENCE, pay my bill, agent!") == (
        "check my balance", "pay my bill", "agent")
    assert parse_hints(None) == ()
    assert parse_hints(" , ") == ()


def test_stability_is_the_share_of_words_unchanged_at_the_start() -> None:
    assert stability("", "check") == ("", 0.0)
    assert stability("check", "check my") == ("check", 0.5)
    assert stability("check my", "check my balance") == ("check my", pytest.approx(2 / 3))
    assert stability("pay my", "check my balance") == ("", 0.0)
    assert stability("check my", "") == ("", 0.0)


def test_confidence_is_the_posterior_of_the_best_of_competing_scores() -> None:
    assert confidence([-1000]) == 1.0
    assert confidence([-1000, -1000]) == 0.5
    assert 0.5 < confidence([-1000, -500000]) <= 1.0


def test_the_upsampler_in_pieces_matches_resampling_the_whole_signal() -> None:
    rng = np.random.default_rng(1)
    signal = to_pcm16(0.3 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) + 0.01 * rng.standard_normal(8000))
    whole = to_pcm16(resample(signal.astype(np.float32) / 32768.0, 8000, 16000))
    upsampler = Upsampler()
    pieces = b"".join(upsampler.feed(signal[i:i + n].tobytes())
                      for i, n in zip(range(0, 8000, 160), [160] * 50, strict=True))
    pieces += upsampler.flush()
    out = np.frombuffer(pieces, dtype=np.int16)
    assert len(out) == len(whole)
    assert np.max(np.abs(out.astype(int) - whole.astype(int))) <= 1  # no seams: the same samples, to rounding


# --- the HTTP recognizer ----------------------------------------------------------------------------------------

@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An OpenAI-style /v1/audio/transcriptions that answers "pay my bill" and keeps what it was sent."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        seen.append({"model": form["model"], "prompt": form.get("prompt"), "auth": request.headers.get("Authorization"),
                     "wav": upload.file.read(), "filename": upload.filename})
        if form["model"] == "broken":
            return web.json_response({"error": "no"}, status=500)
        return web.json_response({"text": " pay my bill "})

    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/v1/audio/transcriptions")), seen
    await server.close()


async def test_the_http_recognizer_posts_the_utterance_as_a_wav(endpoint: tuple[str, list[dict[str, Any]]],
                                                                 tmp_path: Path) -> None:
    url, seen = endpoint
    recognizer = HttpRecognizer(url, "whisper-1", api_key="secret", timeout=5)
    stream = Stream(recognizer, ("pay my bill", "agent"))
    stream.feed(to_pcm16(0.2 * np.sin(np.arange(8000) / 3.0)).tobytes())
    assert await stream.finish() == Result("pay my bill", 1.0)
    assert stream.partials.empty()  # no partials from an HTTP endpoint
    [sent] = seen
    assert (sent["model"], sent["prompt"], sent["auth"], sent["filename"]) == (
        "whisper-1", "pay my bill, agent", "Bearer secret", "audio.wav")
    wav = tmp_path / "sent.wav"
    wav.write_bytes(sent["wav"])
    samples, rate = read_wav(wav)
    assert (rate, len(samples)) == (8000, 8000)
    # a recording's file goes the same way
    path = write_wav(tmp_path / "rec.wav", np.zeros(4000, np.float32))
    assert (await transcribe(recognizer, path)).text == "pay my bill"


async def test_a_failing_endpoint_is_a_recognize_error(endpoint: tuple[str, list[dict[str, Any]]]) -> None:
    url, _ = endpoint
    stream = Stream(HttpRecognizer(url, "broken", timeout=5))
    stream.feed(bytes(3200))
    with pytest.raises(RecognizeError, match="500"):
        await stream.finish()
    refused = Stream(HttpRecognizer("http://127.0.0.1:9/none", timeout=2))
    refused.feed(bytes(3200))
    with pytest.raises(RecognizeError):
        await refused.finish()


# --- the offline recognizer -----------------------------------------------------------------------------------

async def test_silence_is_an_empty_result(recognizer: SphinxRecognizer) -> None:
    stream = Stream(recognizer, HINTS)
    stream.feed(bytes(16000 * 2))
    assert await stream.finish() == Result("", 0.0)


async def test_a_phrase_with_hints_is_recognized_with_partials(recognizer: SphinxRecognizer, balance: bytes) -> None:
    stream = Stream(recognizer, HINTS)
    for start in range(0, len(balance), 320):  # as a call delivers it, 20 ms at a time
        stream.feed(balance[start:start + 320])
    result = await stream.finish()
    assert result.text == "check my balance"
    assert 0.0 < result.confidence <= 1.0
    partials = [stream.partials.get_nowait() for _ in range(stream.partials.qsize())]
    assert partials and partials[-1].text == "check my balance"
    assert all(0.0 <= p.stability <= 1.0 for p in partials)


async def test_hint_words_missing_from_the_dictionary_are_left_out(recognizer: SphinxRecognizer,
                                                                    balance: bytes) -> None:
    stream = Stream(recognizer, ("check my balance", "zqxwv blorptastic"))
    stream.feed(balance)
    assert (await stream.finish()).text == "check my balance"


@pytest.mark.slow  # seconds of decoding with the language model, not in the fast tier
async def test_recognition_keeps_the_event_loop_responsive(recognizer: SphinxRecognizer, balance: bytes) -> None:
    """pocketsphinx holds the GIL while it decodes: pieces of MAX_PIECE_MS keep each stall short (loading a
    model holds it ~0.25 s too: the application warms the recognizer before it serves)."""
    await asyncio.to_thread(recognizer.warm)
    stream = Stream(recognizer)  # the language model: the costly search
    lags: list[float] = []
    audio = balance * 3
    started = time.perf_counter()
    for start in range(0, len(audio), 320):
        stream.feed(audio[start:start + 320])
    done = asyncio.ensure_future(stream.finish())
    while not done.done():
        before = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(time.perf_counter() - before - 0.005)
    elapsed = time.perf_counter() - started
    print(f"language model: {elapsed / (len(audio) / 16000):.3f} s per second of audio, "
          f"worst loop lag {max(lags) * 1000:.1f} ms of {elapsed * 1000:.0f} ms decoding")
    # Relative, not a wall-clock bound (the machines are shared): decoded whole, the loop would stall for all of
    # it; in pieces it gets a turn many times, and no stall is more than a small part of the decode.
    assert len(lags) >= 20
    assert max(lags) < elapsed / 10


def test_speech_activity_tells_speech_from_silence(balance: bytes) -> None:
    activity = SpeechActivity()
    voiced = [activity.is_speech(balance[i:i + 320]) for i in range(0, len(balance) - 320, 320)]
    assert not any(voiced[:40])  # the leading second of silence
    assert sum(voiced) >= 20


# --- the Gather's listener ------------------------------------------------------------------------------------

async def test_the_listener_hears_nothing_in_silence(recognizer: SphinxRecognizer) -> None:
    listener = SpeechListener(recognizer, HINTS, 1.0, 60)
    listener.start(_frames(bytes(16000 * 3)))
    assert await listener.result() == Result("", 0.0)
    assert not listener.started.is_set()


async def test_the_listener_recognizes_and_numbers_its_partials(recognizer: SphinxRecognizer,
                                                                balance: bytes) -> None:
    sent: list[tuple[int, str]] = []

    async def on_partial(partial: Any, sequence: int) -> None:
        sent.append((sequence, partial.text))

    listener = SpeechListener(recognizer, HINTS, None, 60, on_partial)
    listener.start(_frames(balance + bytes(16000 * 5), end=False))  # no end: the pause ends it ("auto")
    result = await asyncio.wait_for(listener.result(), 10)
    assert listener.started.is_set()
    assert result.text == "check my balance"
    assert [n for n, _ in sent] == list(range(len(sent)))
    assert sent and sent[-1][1].startswith("check")


async def test_max_speech_time_ends_a_long_utterance(recognizer: SphinxRecognizer, balance: bytes) -> None:
    listener = SpeechListener(recognizer, HINTS, 5.0, 1)  # 1 s of speech at most
    queue = _frames(balance * 4, end=False)
    listener.start(queue)
    await asyncio.wait_for(listener.result(), 10)
    assert queue.qsize() > 100  # most of the audio was never read


# --- transcriptions and config ----------------------------------------------------------------------------------

async def test_transcriptions_are_kept_and_failed_ones_recovered(tmp_path: Path, endpoint: Any) -> None:
    url, _ = endpoint
    store = Store(tmp_path / "db.sqlite")
    account = "AC" + "1" * 32
    manager = Transcriptions(store, HttpRecognizer(url), account, lambda t: f"http://x/{t.sid}")
    rec = Recording("RE" + "2" * 32, account, "CA" + "3" * 32, 1, RecordingSource.RECORD, RecordingStatus.COMPLETED,
                    duration=1)
    item = manager.begin(rec)
    assert manager.get(item.sid).status is TranscriptionStatus.IN_PROGRESS  # type: ignore[union-attr]
    wav = write_wav(tmp_path / "rec.wav", np.zeros(8000, np.float32))
    done = await manager.run(item, wav)
    assert (done.status, done.text, done.duration) == (TranscriptionStatus.COMPLETED, "pay my bill", 1)
    failed = await manager.run(manager.begin(rec), tmp_path / "missing.wav")
    assert failed.status is TranscriptionStatus.FAILED
    assert [t.sid for t in manager.list(rec.sid, 0, 10)] == [failed.sid, done.sid]
    assert manager.list("RE" + "9" * 32, 0, 10) == []
    pending = manager.begin(rec)
    again = Transcriptions(store, HttpRecognizer(url), account, lambda t: "")  # a restart
    assert again.get(pending.sid).status is TranscriptionStatus.FAILED  # type: ignore[union-attr]
    assert manager.url(done) == f"http://x/{done.sid}"
    assert manager.delete(done.sid) and not manager.delete(done.sid)
    assert Transcriptions(store, HttpRecognizer(url), "AC" + "4" * 32, lambda t: "").get(failed.sid) is None


def test_the_speech_table(tmp_path: Path) -> None:
    def load(text: str) -> SpeechConfig:
        path = tmp_path / "softswitch.toml"
        path.write_text(text)
        return load_config(path).speech

    assert load("") == SpeechConfig()
    assert load("[speech]\npreload = false\n") == SpeechConfig(preload=False)
    assert isinstance(make_recognizer(SpeechConfig()), SphinxRecognizer)
    http = load('[speech]\nengine = "http"\nurl = "http://127.0.0.1:8000/v1/audio/transcriptions"\n'
                'model = "whisper-large"\napi_key = "k"\ntimeout = 5\n')
    assert http == SpeechConfig("http", "http://127.0.0.1:8000/v1/audio/transcriptions", "whisper-large", "k", 5.0)
    made = make_recognizer(http)
    assert isinstance(made, HttpRecognizer) and (made.model, made.api_key, made.timeout) == ("whisper-large", "k", 5)
    for text, message in [('[speech]\nengine = "http"\n', "speech.url is required"),
                          ('[speech]\nengine = "vosk"\n', "speech.engine must be one of pocketsphinx, http"),
                          ('[speech]\nurl = "ftp://x"\n', "speech.url must be an absolute http"),
                          ("[speech]\ntimeout = 0\n", "speech.timeout must be a positive number"),
                          ("[speech]\nengin = 1\n", "did you mean speech.engine?"),
                          ('[speech]\npreload = "no"\n', "speech.preload must be")]:
        with pytest.raises(ConfigError, match=message):
            load(text)


async def test_a_listener_closed_mid_utterance_gives_its_decoder_back(balance: bytes) -> None:
    recognizer = SphinxRecognizer()
    listener = SpeechListener(recognizer, HINTS, 5.0, 60)
    listener.start(_frames(balance[: len(balance) // 2], end=False))  # speech, then the tap goes quiet
    await asyncio.wait_for(listener.started.wait(), 5)
    for _ in range(50):
        await asyncio.sleep(0.01)  # let the recognizer thread take the audio queued so far
    await listener.close()
    for _ in range(200):
        if recognizer._idle[True]:
            break
        await asyncio.sleep(0.01)
    assert len(recognizer._idle[True]) == 1


async def test_hints_none_of_which_can_be_used_fall_back_to_the_language_model(balance: bytes) -> None:
    recognizer = SphinxRecognizer()
    stream = Stream(recognizer, ("zqxwv blorptastic",))
    stream.feed(balance)
    result = await stream.finish()
    assert result.confidence in (0.0, 0.5)  # a language-model result (or nothing), not a hint phrase
    assert (len(recognizer._idle[True]), len(recognizer._idle[False])) == (1, 1)
    again = Stream(recognizer, ("pay my bill", "check my balance"))  # the grammar decoder is used again
    again.feed(balance)
    assert (await again.finish()).text == "check my balance"
