"""The offline recognizer: pocketsphinx 5 and the en-US model inside its PyPI package.

Measured on espeak-ng phrases sent through G.711 (tests/unit/test_recognize.py), the model's own 16 kHz
front end fed call audio upsampled 2:1 recognizes far better than the same model reconfigured for 8 kHz
(`samprate=8000`, `nfft=256`, `upperf` 3500-3800: almost nothing right), so audio is upsampled here
(`media.recognize.Upsampler`).

With hints, an utterance decodes against a JSGF grammar whose sentences are the hint phrases (phrases with a
word the dictionary lacks are left out, with a log line).  pocketsphinx returns its best path even when that
path stops inside a phrase; the result is then the best complete phrase of the lattice's n-best list, whose
first entries differ mostly in where they stop.  Without hints (or when no phrase is left) it decodes against
the general language model, which is much weaker on synthetic speech.

Decoders take a while to load, so finished utterances give theirs back to a small pool.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pocketsphinx import Decoder, Vad

from media.recognize import SAMPLE_RATE, Partial, Result, Upsampler, stability

log = logging.getLogger("media.recognize")

LM_OPTIONS: dict[str, object] = {"fwdflat": False}
"""The language-model decoders: without the second (flat-lexicon) pass, which cost as much again and made
`finish` take 0.3 s instead of 0.03 s, for no gain on the test phrases."""

GRAMMAR_OPTIONS: dict[str, object] = {**LM_OPTIONS, "beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60}
"""The hint-grammar decoders: wider beams than pocketsphinx's defaults (1e-48, 7e-29, 1e-48), 98 % of the test
phrases right instead of 95 % for about 0.02 s of CPU per second of audio either way."""

DITHER = 512.0
"""Standard deviation, in 16-bit steps (about -36 dBFS), of the noise added under the (upsampled) audio."""

POOL = 4
"""Idle decoders kept for the next utterances."""

NBEST = 50
"""How far down the n-best list a complete hint phrase is looked for."""


@dataclass
class _Pooled:
    """A decoder and the hint grammar its last utterance left active (removed by the next: pocketsphinx keeps
    a decoder's active search)."""

    decoder: Decoder
    search: str | None = None


class SphinxRecognizer:
    """`media.recognize.Recognizer` over pocketsphinx (`[speech] engine = "pocketsphinx"`, the default).

    Two kinds of decoders, each pooled: grammar decoders load no language model (~30 MB, 0.1 s to load),
    language-model decoders do (~90 MB, 0.25 s)."""

    name = "pocketsphinx"
    partials = True

    def __init__(self) -> None:
        self._idle: dict[bool, list[_Pooled]] = {False: [], True: []}  # by grammar (True) or language model
        self._lock = threading.Lock()
        self._names = itertools.count(1)

    def utterance(self, hints: Sequence[str] = ()) -> SphinxUtterance:
        return SphinxUtterance(self, tuple(hints))

    def take(self, grammar: bool) -> _Pooled:
        """An idle decoder for a grammar or the language model, or a new one."""
        with self._lock:
            if self._idle[grammar]:
                return self._idle[grammar].pop()
        if grammar:
            return _Pooled(Decoder(loglevel="FATAL", lm=None, **GRAMMAR_OPTIONS))
        return _Pooled(Decoder(loglevel="FATAL", **LM_OPTIONS))

    def give_back(self, pooled: _Pooled, grammar: bool) -> None:
        with self._lock:
            if len(self._idle[grammar]) < POOL:
                self._idle[grammar].append(pooled)

    def warm(self) -> None:
        """Load a decoder of each kind ahead of the first call (blocking, and holding the GIL while it loads)."""
        for grammar in (False, True):
            self.give_back(self.take(grammar), grammar)

    def grammar(self, pooled: _Pooled, hints: Sequence[str]) -> frozenset[str]:
        """Activate a grammar of `hints` on a grammar decoder; the phrases in it (none: no phrase is usable,
        nothing changed)."""
        decoder = pooled.decoder
        usable = []
        for phrase in hints:
            missing = [word for word in phrase.split() if decoder.lookup_word(word) is None]
            if missing:
                log.info("hint %r left out: %s not in the pocketsphinx dictionary", phrase, ", ".join(missing))
            else:
                usable.append(phrase)
        if not usable:
            return frozenset()
        name = f"hints{next(self._names)}"
        decoder.add_jsgf_string(name, f"#JSGF V1.0;\ngrammar {name};\npublic <hint> = {' | '.join(usable)};\n")
        decoder.activate_search(name)
        if pooled.search is not None:
            decoder.remove_search(pooled.search)
        pooled.search = name
        return frozenset(usable)


class SphinxUtterance:
    """One utterance on one decoder; fed 8 kHz PCM16, decoded at 16 kHz."""

    def __init__(self, recognizer: SphinxRecognizer, hints: tuple[str, ...]) -> None:
        self._recognizer = recognizer
        self._phrases: frozenset[str] = frozenset()
        if hints:
            pooled = recognizer.take(True)
            self._phrases = recognizer.grammar(pooled, hints)
            if not self._phrases:  # no usable hint: the language model
                recognizer.give_back(pooled, True)
        if not self._phrases:
            pooled = recognizer.take(False)
        self._pooled = pooled
        self._decoder = pooled.decoder
        self._upsampler = Upsampler()
        self._previous = ""
        self._noise = np.random.default_rng(0)
        self._decoder.start_utt()

    def _dither(self, data: bytes) -> bytes:
        """`data` over a noise floor.  Call audio upsampled from 8 kHz has nothing above 4 kHz, and synthetic or
        gated audio has stretches of exact zeros; both throw the 16 kHz model's noise and energy estimates off.
        Measured on the test phrases (tests/unit/test_recognize_accuracy.py), with hints: 83 % right without
        noise, 85-91 % with sigma 32-128, 95-98 % with 256-768 (the plateau this sits in)."""
        if not data or not DITHER:
            return data
        samples = np.frombuffer(data, dtype=np.int16).astype(np.float32)
        samples += self._noise.normal(0.0, DITHER, samples.size).astype(np.float32)
        return np.clip(samples, -32768, 32767).astype(np.int16).tobytes()

    def feed(self, pcm: bytes) -> Partial | None:
        data = self._dither(self._upsampler.feed(pcm))
        if not data:
            return None
        self._decoder.process_raw(data, False, False)
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        if not text or text == self._previous:
            return None
        stable, share = stability(self._previous, text)
        self._previous = text
        return Partial(text, stable, share)

    def finish(self) -> Result:
        decoder = self._decoder
        try:
            tail = self._dither(self._upsampler.flush())
            if tail:
                decoder.process_raw(tail, False, False)
            decoder.end_utt()
            return self._result(decoder)
        finally:
            self._recognizer.give_back(self._pooled, bool(self._phrases))

    def _result(self, decoder: Decoder) -> Result:
        hyp = decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not self._phrases:  # the language model: pocketsphinx gives no usable posterior here
            return Result(text, LM_CONFIDENCE if text else 0.0)
        # The distinct complete phrases of the n-best list, best first, with their path scores.
        scores: dict[str, int] = {}
        for entry in itertools.islice(decoder.nbest(), NBEST):
            if entry is not None and entry.hypstr in self._phrases and entry.hypstr not in scores:
                scores[entry.hypstr] = entry.score
        if text in self._phrases and text not in scores:
            scores = {text: hyp.best_score, **scores}  # type: ignore[union-attr]
        if not scores:
            return Result("", 0.0)
        best = next(iter(scores))
        return Result(best, round(confidence(list(scores.values())), 4))


LM_CONFIDENCE = 0.5
"""Confidence of a language-model result (no hints)."""

SCORE_SCALE = math.log(1.0001) / 40
"""pocketsphinx scores are logs in base 1.0001; acoustic scores are overconfident, so their differences are
flattened (divided by 40) before they become posteriors."""


def confidence(scores: Sequence[int]) -> float:
    """The posterior of the first of competing phrases' path scores (a softmax over them)."""
    top = scores[0]
    total = sum(math.exp(max(-50.0, (s - top) * SCORE_SCALE)) for s in scores)
    return 1.0 / total


class SpeechActivity:
    """Whether 20 ms frames of 8 kHz PCM16 hold speech (pocketsphinx's voice activity detector)."""

    frame_bytes = SAMPLE_RATE * 2 // 50

    def __init__(self, mode: int = 2) -> None:
        self._vad = Vad(mode, SAMPLE_RATE, 0.02)
        if self._vad.frame_bytes != self.frame_bytes:  # pragma: no cover - a pocketsphinx without 8 kHz frames
            raise ValueError(f"pocketsphinx VAD wants {self._vad.frame_bytes}-byte frames")

    def is_speech(self, frame: bytes) -> bool:
        """`frame` is `frame_bytes` long (shorter ones are padded with silence)."""
        if len(frame) < self.frame_bytes:
            frame = frame + bytes(self.frame_bytes - len(frame))
        return bool(self._vad.is_speech(frame[: self.frame_bytes]))
