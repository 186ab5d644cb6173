"""Audio for the answering-machine detector's tests: who answers, as 8 kHz 16-bit samples.

Speech is espeak-ng's (`media.speech.Speech`, cached across runs in the temporary directory); tones, silence and
line noise are synthetic.  The e2e tests write the same answers to WAV files for the lab phone to play
(`write_answer`).  The tests here check the builders themselves.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.amd import RATE
from media.audio import read_wav, write_wav
from media.speech import Speech
from media.tones import dominant_frequency

Samples = npt.NDArray[np.int16]
SPEECH_CACHE = Path(tempfile.gettempdir()) / "softswitch-amd-speech"

GREETING = ("Hi, you have reached the voicemail of John Smith. I am not available to take your call right now. "
            "Please leave your name, your number and a short message, and I will get back to you.")
SHORT_GREETINGS = ("Hello?", "Hi, this is Sam.", "Yes?", "Hello, who is calling?")
VOICES = (("man", "en-US"), ("woman", "en-US"), ("man", "en-GB"))


@cache
def speech(text: str, voice: str = "woman", language: str = "en-US") -> Samples:
    """`text` spoken by espeak-ng at 8 kHz."""
    # on a thread of its own: callers may be inside an event loop (async tests), where asyncio.run cannot nest
    with ThreadPoolExecutor(1) as pool:
        path = pool.submit(asyncio.run, Speech(SPEECH_CACHE).synthesize(text, voice, language)).result()
    samples, rate = read_wav(path)
    assert rate == RATE
    return samples


def silence(seconds: float) -> Samples:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def tone(freq: float, seconds: float, level: float = 0.3) -> Samples:
    t = np.arange(round(seconds * RATE)) / RATE
    return (level * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def with_noise(samples: Samples, dbfs: float, seed: int = 7) -> Samples:
    """`samples` on a line with white noise of `dbfs` RMS."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 32767 * 10 ** (dbfs / 20), samples.size)
    return np.clip(samples + noise, -32768, 32767).astype(np.int16)


def join(*parts: Samples) -> Samples:
    return np.concatenate(parts).astype(np.int16)


# -- who answers ------------------------------------------------------------------------------------------
def human(text: str = "Hello?", voice: str = "man", language: str = "en-US") -> Samples:
    """A person: a short greeting, then silence (waiting for the caller)."""
    return join(silence(0.5), speech(text, voice, language), silence(12.0))


def machine_beep(beep_hz: float = 1000.0, beep_s: float = 0.5, voice: str = "woman", language: str = "en-US",
                 gap_s: float = 0.4) -> Samples:
    """A voicemail: a long greeting, a beep, then silence (recording)."""
    return join(silence(0.5), speech(GREETING, voice, language), silence(gap_s), tone(beep_hz, beep_s), silence(15.0))


def machine_silence(voice: str = "woman", language: str = "en-US") -> Samples:
    """A voicemail without a beep: a long greeting, then silence."""
    return join(silence(0.5), speech(GREETING, voice, language), silence(15.0))


def fax(cycles: int = 6) -> Samples:
    """A calling fax: CNG, 1100 Hz for 0.5 s every 3.5 s."""
    return join(silence(0.3), *[join(tone(1100.0, 0.5), silence(3.0)) for _ in range(cycles)])


def nobody(seconds: float = 20.0) -> Samples:
    """Silence: an open line with faint noise."""
    return with_noise(silence(seconds), -65.0)


ANSWERS: dict[str, Callable[[], Samples]] = {
    "human": human, "machine_beep": machine_beep, "machine_silence": machine_silence, "fax": fax, "silence": nobody,
}  # fmt: skip


def write_answer(name: str, directory: Path) -> Path:
    """One of `ANSWERS` as a WAV file for the lab phone (`--play`, which loops it: each is long enough)."""
    return write_wav(directory / f"amd-{name}.wav", ANSWERS[name](), RATE)


# -- the builders ----------------------------------------------------------------------------------------
def test_speech_is_espeak_audio_at_8_khz() -> None:
    hello, greeting = speech("Hello?", "man"), speech(GREETING)
    assert 0.3 < hello.size / RATE < 1.5
    assert greeting.size / RATE > 6.0
    assert np.abs(hello).max() > 3000


@pytest.mark.parametrize("freq", [440.0, 1000.0, 1100.0, 1900.0])
def test_tone_has_its_frequency(freq: float) -> None:
    assert abs(dominant_frequency(tone(freq, 0.5), RATE) - freq) < 2.0


def test_fax_is_cng_cadence() -> None:
    audio = fax(cycles=2)
    assert audio.size == round((0.3 + 2 * 3.5) * RATE)
    on = audio[round(0.3 * RATE):round(0.8 * RATE)]
    assert abs(dominant_frequency(on, RATE) - 1100.0) < 2.0
    assert not audio[round(0.9 * RATE):round(3.7 * RATE)].any()


def test_write_answer_round_trips(tmp_path: Path) -> None:
    path = write_answer("human", tmp_path)
    samples, rate = read_wav(path)
    assert rate == RATE
    assert np.array_equal(samples, human())
