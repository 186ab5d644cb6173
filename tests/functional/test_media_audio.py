"""media.audio (decode, resample, WAV I/O), media.sources (AudioCache over a local HTTP server), media.speech."""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from aiohttp import web
from aiohttp.test_utils import TestServer

from media.audio import BRIDGE_RATE, AudioError, decode, read_wav, resample, to_pcm16, write_wav
from media.sources import AudioCache
from media.speech import Speech, espeak_language, espeak_voice


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> npt.NDArray[np.float64]:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def peak_hz(samples: npt.ArrayLike, rate: int) -> float:
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


def file_bytes(samples: npt.ArrayLike, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


# --- decode / resample / WAV ------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", None), ("OGG", None)])
def test_decode_formats(fmt: str, subtype: str | None) -> None:
    samples, rate = decode(file_bytes(tone(440, 0.5, 16000), 16000, fmt, subtype))
    assert rate == 16000 and samples.dtype == np.float32 and samples.shape == (8000,)
    assert abs(peak_hz(samples, rate) - 440) < 3


def test_decode_mp3_and_stereo_downmix() -> None:
    stereo = np.stack([tone(440, 1.0, 44100), tone(440, 1.0, 44100)], axis=1)
    samples, rate = decode(file_bytes(stereo, 44100, "MP3"))
    assert rate == 44100 and samples.ndim == 1
    assert abs(samples.size - 44100) < 2000
    assert abs(peak_hz(samples, rate) - 440) < 3


@pytest.mark.parametrize("data", [b"", b"RIFF\x00\x00\x00\x00WAVEjunkjunk", b"hello, this is a text file\n" * 40])
def test_decode_rejects_bad_data(data: bytes) -> None:
    with pytest.raises(AudioError):
        decode(data)
    with pytest.raises(AudioError, match="no samples"):
        decode(file_bytes(np.zeros(0, dtype=np.int16), 8000, "WAV", "PCM_16"))


@pytest.mark.parametrize("rate", [44100, 16000, 48000, 22050])
def test_resample_keeps_pitch_and_length(rate: int) -> None:
    out = resample(tone(440, 2.0, rate), rate, BRIDGE_RATE)
    assert out.size == 2 * BRIDGE_RATE
    assert abs(peak_hz(out, BRIDGE_RATE) - 440) < 2
    reference = tone(440, 2.0, BRIDGE_RATE)
    assert np.max(np.abs(out[200:-200] - reference[200:-200])) < 1e-3  # no delay, no gain change


def test_resample_removes_content_above_new_nyquist() -> None:
    out = resample(tone(5000, 1.0, 44100), 44100, BRIDGE_RATE)  # would alias to 3 kHz
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < 1e-3


def test_pcm16_clips_and_wav_round_trip(tmp_path: Path) -> None:
    assert to_pcm16(np.array([2.0, -2.0, 0.5])).tolist() == [32767, -32768, 16384]
    samples = to_pcm16(tone(440, 0.25, BRIDGE_RATE))
    path = write_wav(tmp_path / "sub" / "a.wav", samples)
    back, rate = read_wav(path)
    assert rate == BRIDGE_RATE and np.array_equal(back, samples)
    assert sf.info(str(path)).subtype == "PCM_16"
    assert [p.name for p in path.parent.iterdir()] == ["a.wav"]  # no temporary file left behind


# --- AudioCache ---------------------------------------------------------------------------------------


@pytest.fixture
async def audio_server() -> AsyncIterator[tuple[TestServer, Counter[str]]]:
    hits: Counter[str] = Counter()
    wav = file_bytes(tone(440, 0.5, 16000), 16000, "WAV", "PCM_16")

    async def etag(request: web.Request) -> web.Response:
        hits["etag"] += 1
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=wav, content_type="audio/wav", headers={"ETag": '"v1"'})

    async def fresh(request: web.Request) -> web.Response:
        hits["fresh"] += 1
        return web.Response(body=wav, content_type="audio/wav", headers={"Cache-Control": "public, max-age=300"})

    async def slow(request: web.Request) -> web.Response:
        hits["slow"] += 1
        await asyncio.sleep(0.2)
        return web.Response(body=wav, content_type="audio/wav")

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="<html>not audio</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/etag.wav", etag)
    app.router.add_get("/fresh.wav", fresh)
    app.router.add_get("/slow.wav", slow)
    app.router.add_get("/text.wav", text)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, hits
    await server.close()


async def test_cache_revalidates_with_etag(tmp_path: Path, audio_server: tuple[TestServer, Counter[str]]) -> None:
    server, hits = audio_server
    cache = AudioCache(tmp_path)
    url = str(server.make_url("/etag.wav"))
    async with aiohttp.ClientSession() as session:
        first = await cache.from_url(url, session)
        mtime = first.stat().st_mtime_ns
        second = await cache.from_url(url, session)
        # a new cache object (a restarted switch) still revalidates from the stored validators
        third = await AudioCache(tmp_path).from_url(url, session)
    assert first == second == third and first.name.endswith(".wav")
    assert hits["etag"] == 3 and first.stat().st_mtime_ns == mtime  # 304s reused the file
    samples, rate = read_wav(first)
    assert rate == BRIDGE_RATE and samples.dtype == np.int16 and samples.size == 4000
    assert abs(peak_hz(samples, rate) - 440) < 3


async def test_cache_max_age_skips_request(tmp_path: Path, audio_server: tuple[TestServer, Counter[str]]) -> None:
    server, hits = audio_server
    cache = AudioCache(tmp_path)
    url = str(server.make_url("/fresh.wav"))
    async with aiohttp.ClientSession() as session:
        paths = [await cache.from_url(url, session) for _ in range(3)]
    assert len(set(paths)) == 1 and hits["fresh"] == 1


async def test_cache_errors_carry_url_and_status(tmp_path: Path, audio_server: tuple[TestServer, Counter[str]]) -> None:
    server, _ = audio_server
    cache = AudioCache(tmp_path, timeout=0.05)
    async with aiohttp.ClientSession() as session:
        missing = str(server.make_url("/missing.wav"))
        with pytest.raises(AudioError, match="404") as err:
            await cache.from_url(missing, session)
        assert err.value.status == 404 and err.value.url == missing
        with pytest.raises(AudioError) as err:
            await cache.from_url(str(server.make_url("/text.wav")), session)
        assert err.value.status == 200
        with pytest.raises(AudioError, match="timed out"):
            await cache.from_url(str(server.make_url("/slow.wav")), session)
        with pytest.raises(AudioError, match="scheme"):
            await cache.from_url("ftp://example.com/a.wav", session)


async def test_cache_concurrent_fetches_once(tmp_path: Path, audio_server: tuple[TestServer, Counter[str]]) -> None:
    server, hits = audio_server
    cache = AudioCache(tmp_path)
    url = str(server.make_url("/slow.wav"))
    async with aiohttp.ClientSession() as session:
        paths = await asyncio.gather(*(cache.from_url(url, session) for _ in range(5)))
    assert len(set(paths)) == 1 and hits["slow"] == 1


async def test_cache_local_files(tmp_path: Path) -> None:
    source = tmp_path / "in dir" / "music.flac"
    source.parent.mkdir()
    sf.write(str(source), tone(440, 0.5, 44100), 44100)
    cache = AudioCache(tmp_path / "cache")
    path = cache.from_file(source)
    assert cache.from_file(source) == path
    async with aiohttp.ClientSession() as session:
        assert await cache.from_url(source.as_uri(), session) == path
    samples, rate = read_wav(path)
    assert rate == BRIDGE_RATE and samples.size == 4000
    with pytest.raises(AudioError):
        cache.from_file(tmp_path / "nope.wav")
    (tmp_path / "notes.txt").write_text("not audio at all\n" * 20)
    with pytest.raises(AudioError):
        cache.from_file(tmp_path / "notes.txt")


# --- Speech -----------------------------------------------------------------------------------------



def test_voice_mapping() -> None:
    assert espeak_voice("man", "en-US") == "en-us+m3"
    assert espeak_voice("woman", "en-GB") == "en-gb+f3"
    assert espeak_voice("alice", "es-ES") == "es+f3"
    assert espeak_voice("alice", "fr-FR") == "fr-fr+f3"
    assert espeak_voice("man", "de-DE") == "de+m3"
    assert espeak_voice("Polly.Matthew") == "en-us+m3"
    assert espeak_voice("Polly.Joanna-Neural") == "en-us+f3"
    assert espeak_voice("Polly.Hans") == "de+m3"
    assert espeak_voice("Polly.Hans", "en-GB") == "en-gb+m3"
    assert espeak_voice("Google.en-US-Standard-D") == "en-us+m3"
    assert espeak_voice("Google.en-GB-Neural2-A") == "en-gb+f3"
    assert espeak_voice("Polly.Unknown", "es-MX") == "es-419+f3"
    assert espeak_language("sv-SE") == "sv"
    with pytest.raises(AudioError):
        espeak_language("--help")


async def test_speech_synthesizes_and_caches(tmp_path: Path) -> None:
    speech = Speech(tmp_path)
    path = await speech.synthesize("hello world", "alice", "en-US")
    samples, rate = read_wav(path)
    assert rate == BRIDGE_RATE and samples.ndim == 1
    assert 0.4 < samples.size / rate < 3.0
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 500  # silence is ~0
    start = time.perf_counter()
    for _ in range(200):
        assert await speech.synthesize("hello world", "alice", "en-US") == path
    per_hit = (time.perf_counter() - start) / 200
    assert per_hit < 0.001, f"cache hit took {per_hit * 1e6:.0f} us"
    assert await Speech(tmp_path).synthesize("hello world", "alice", "en-US") == path  # on-disk hit
    assert await speech.synthesize("hello world", "man", "en-US") != path


async def test_speech_text_is_not_options(tmp_path: Path) -> None:
    speech = Speech(tmp_path)
    paths = await asyncio.gather(speech.synthesize("-v xx --help", "woman", "en-GB"), speech.synthesize("-h", "man"))
    for path in paths:
        samples, _ = read_wav(path)
        assert samples.size > 1000
    with pytest.raises(AudioError, match="empty"):
        await speech.synthesize("   ", "alice", "en-US")


async def test_speech_missing_binary_names_package(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="Debian package espeak-ng"):
        await Speech(tmp_path, binary="espeak-ng-not-here").synthesize("hi", "alice", "en-US")
