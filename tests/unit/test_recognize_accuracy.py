"""Accuracy of the offline recognizer on 22 phrases spoken by espeak-ng in three voices, through the path call
audio takes: 8 kHz synthesis, μ-law frames of 20 ms, the Gather's listener (voice activity, pre-roll,
endpointing), the 2:1 upsampler and pocketsphinx.  With the phrases as hints it must get 90 % right; the CPU
it costs per second of audio is printed (run with -s to see the figures)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from media.audio import read_wav
from media.recognize_sphinx import SphinxRecognizer
from media.speech import Speech
from switch.verbs.gather_speech import SpeechListener
from tests.unit.test_recognize import _frames

pytestmark = pytest.mark.slow  # about a minute of decoding: `make test` runs it, `make test-fast` does not

PHRASES = (
    "check my balance", "pay my bill", "talk to an agent", "billing department", "technical support",
    "cancel my order", "track my package", "reset my password", "speak to a representative", "yes please",
    "no thank you", "open a new account", "report a lost card", "make a payment", "change my address",
    "business hours", "store locations", "schedule an appointment", "sales department", "customer service",
    "repeat the menu", "main menu",
)
VOICES = ("alice", "man", "Polly.Brian")  # espeak-ng en-us+f3, en-us+m3, en-gb+m3
LM_PHRASES = 2


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Each phrase in each voice as 8 kHz PCM16, after 1 s and before 2 s of silence."""
    speech = Speech(tmp_path_factory.mktemp("say"))

    async def synthesize() -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for voice in VOICES:
            out[voice] = []
            for text in PHRASES:
                samples, _ = read_wav(await speech.synthesize(text, voice))
                out[voice].append(np.concatenate([np.zeros(8000, np.int16), samples,
                                                  np.zeros(16000, np.int16)]).tobytes())
        return out

    return asyncio.run(synthesize())


async def _recognize_all(spoken: dict[str, list[bytes]],
                         hints: tuple[str, ...]) -> tuple[dict[str, list[str]], float, float]:
    """What was recognized per voice (in PHRASES order), CPU seconds and audio seconds."""
    recognizer = SphinxRecognizer()
    await asyncio.to_thread(recognizer.warm)
    heard: dict[str, list[str]] = {voice: [] for voice in VOICES}
    cpu = audio = 0.0
    for voice in VOICES:
        for pcm in spoken[voice]:
            listener = SpeechListener(recognizer, hints, None, 60)
            started = time.process_time()
            listener.start(_frames(pcm))
            heard[voice].append((await listener.result()).text)
            cpu += time.process_time() - started
            audio += len(pcm) / 16000
    return heard, cpu, audio


def _report(heard: dict[str, list[str]], cpu: float, audio: float, what: str) -> float:
    count = len(heard[VOICES[0]])
    total = sum(h == p for voice in VOICES for h, p in zip(heard[voice], PHRASES[:count], strict=True))
    share = total / (len(VOICES) * count)
    for voice in VOICES:
        right = sum(h == p for h, p in zip(heard[voice], PHRASES[:count], strict=True))
        misses = [(p, h) for h, p in zip(heard[voice], PHRASES[:count], strict=True) if h != p]
        print(f"\n{what} {voice}: {right}/{count} right; missed {misses}")
    print(f"\n{what}: {total}/{len(VOICES) * count} = {share:.0%} right, "
          f"{cpu / audio:.3f} s of CPU per second of audio (listener, VAD and recognizer)")
    return share


async def test_ninety_percent_of_the_phrases_are_recognized_with_hints(spoken: dict[str, list[bytes]]) -> None:
    heard, cpu, audio = await _recognize_all(spoken, PHRASES)
    assert _report(heard, cpu, audio, "with hints") >= 0.9


async def test_without_hints_the_language_model_is_measured(spoken: dict[str, list[bytes]]) -> None:
    """Synthetic speech through the general language model, on the first LM_PHRASES phrases (it costs ten times
    the CPU of a grammar): reported, not a target."""
    heard, cpu, audio = await _recognize_all({voice: pcm[:LM_PHRASES] for voice, pcm in spoken.items()}, ())
    _report(heard, cpu, audio, "without hints")
    assert any(text for voice in VOICES for text in heard[voice])  # it hears something
