"""Answering-machine detection: who answered a call (a person, a machine, a fax), from its first seconds of audio.

Pure and incremental: `AmdDetector.feed` takes the called party's audio as 16-bit 8 kHz PCM (any length; it works
on 20 ms frames) and returns a `Decision` once it knows, with the time in the call's audio it knew it (Twilio's
MachineDetectionDuration).  No I/O and no clock: time is the audio fed so far; `expire` ends a detection whose
audio stopped coming.

Each 20 ms frame is classed as silence, voice or tone:

* *energy with an adaptive noise floor*: the floor starts at the first frame's level (at most -41 dBFS) and follows
  the quietest frames (fast down, slowly up), and a frame
  is loud when its RMS is 12 dB over the floor and over an absolute minimum (-49 dBFS), so line noise and comfort
  noise stay silence;
* *tone*: a loud frame whose spectrum (Hann window, zero-padded FFT) has at least 80 % of its energy within
  +-100 Hz of its peak, between 300 and 2200 Hz.  Speech spreads its energy over harmonics and never passes.

Then the greeting's length and cadence, with Twilio's parameters (`AmdSettings`, its defaults):

* no voice within `silence_timeout_ms` (5000) of answer: ``unknown``;
* voice starts a *speech activity*, which goes on across gaps shorter than `speech_end_threshold_ms` (1200);
  an activity that ends (a gap that long) before it lasted `speech_threshold_ms` (2400) is a person ("Hello?",
  then silence): ``human``; one that lasts longer is a machine's greeting;
* a machine: with Enable, ``machine_start`` at once; with DetectMessageEnd, the end of the greeting is awaited:
  a beep (a steady tone of 400..2000 Hz for >= 100 ms, reported when it ends) is ``machine_end_beep``, a gap of
  `speech_end_threshold_ms` and 800 ms more (beeps often follow a greeting after a pause of a second or so) is
  ``machine_end_silence``, and `timeout_ms` (30 s) before either ``machine_end_other``;
* a beep right after a short greeting ("Leave a message" + beep) is a machine too;
* fax: a calling fax's CNG (1100 Hz, 0.5 s on, 3 s off) or an answering fax's CED (2100 Hz) before any voice,
  steady for 400 ms: ``fax``;
* `timeout_ms` with nothing decided: ``unknown``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 160
FFT_SIZE = 1024  # 160 samples zero-padded: 7.8 Hz bins, for the tone's frequency

MIN_VOICE_RMS = 120.0  # about -49 dBFS: quieter is silence whatever the noise floor
VOICE_OVER_NOISE = 4.0  # 12 dB over the floor
NOISE_RISE = 1.01  # per frame, about 4 dB/s: the floor follows a louder line, speech's dips keep it down
NOISE_START_MAX = 300.0  # the first frame sets the floor, no higher than this (a call may open with speech)

TONE_PURITY = 0.8  # share of a frame's energy within TONE_HALF_WIDTH of its peak
TONE_HALF_WIDTH = 100.0  # Hz: the main lobe of a 20 ms Hann window
TONE_RANGE = (300.0, 2200.0)
TONE_DRIFT = 50.0  # Hz a steady tone's frames may differ from the run's mean
BEEP_RANGE = (400.0, 2000.0)
BEEP_MIN_MS = 100
BEEP_GRACE_MS = 800  # DetectMessageEnd: silence after a greeting waits this much longer for a late beep
FAX_TONES = (1100.0, 2100.0)  # CNG (calling fax), CED (answering fax)
FAX_TOLERANCE = 50.0
FAX_MIN_MS = 400


class AnsweredBy(enum.StrEnum):
    """Who answered, in Twilio's words (`AnsweredBy`), which are also the call model's `answered_by`."""

    HUMAN = "human"
    MACHINE_START = "machine_start"
    MACHINE_END_BEEP = "machine_end_beep"
    MACHINE_END_SILENCE = "machine_end_silence"
    MACHINE_END_OTHER = "machine_end_other"
    FAX = "fax"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AmdSettings:
    """How to detect: Twilio's MachineDetection* parameters, with their defaults.

    detect_message_end: DetectMessageEnd (wait for a machine's greeting to end) rather than Enable.
    timeout_ms: MachineDetectionTimeout (seconds there): nothing decided by then is unknown.
    speech_threshold_ms: MachineDetectionSpeechThreshold: speech activity longer than this is a machine.
    speech_end_threshold_ms: MachineDetectionSpeechEndThreshold: silence that ends a speech activity.
    silence_timeout_ms: MachineDetectionSilenceTimeout: initial silence after which the answer is unknown.
    """

    detect_message_end: bool = False
    timeout_ms: int = 30_000
    speech_threshold_ms: int = 2400
    speech_end_threshold_ms: int = 1200
    silence_timeout_ms: int = 5000


@dataclass(frozen=True)
class Decision:
    """What the detector decided, and when: milliseconds of the call's audio it needed."""

    answered_by: AnsweredBy
    at_ms: int
    reason: str = ""


class _Phase(enum.Enum):
    WAITING = "waiting"  # no voice yet
    SPEECH = "speech"  # a speech activity, not yet long enough to be a machine
    MACHINE = "machine"  # DetectMessageEnd: a machine's greeting, until its end
    DONE = "done"


class _Kind(enum.Enum):
    SILENCE = "silence"
    VOICE = "voice"
    TONE = "tone"


@dataclass
class _ToneRun:
    start_ms: int
    frames: int
    freq_sum: float

    @property
    def freq(self) -> float:
        return self.freq_sum / self.frames

    @property
    def ms(self) -> int:
        return self.frames * FRAME_MS


_WINDOW = np.hanning(FRAME_SAMPLES)
_FREQS = np.fft.rfftfreq(FFT_SIZE, d=1.0 / RATE)


def tone_of(frame: npt.NDArray[np.float64]) -> float | None:
    """The frequency of a 20 ms frame that is one steady tone (see the module's rule), or None."""
    power = np.abs(np.fft.rfft((frame - frame.mean()) * _WINDOW, FFT_SIZE)) ** 2
    power[0] = 0.0
    total = float(power.sum())
    if total <= 0.0:
        return None
    peak = float(_FREQS[int(np.argmax(power))])
    if not TONE_RANGE[0] <= peak <= TONE_RANGE[1]:
        return None
    lobe = np.abs(_FREQS - peak) <= TONE_HALF_WIDTH
    return peak if float(power[lobe].sum()) / total >= TONE_PURITY else None


class AmdDetector:
    """One call's detection: `feed` it audio until it returns a `Decision` (later audio is ignored)."""

    def __init__(self, settings: AmdSettings | None = None) -> None:
        self.settings = settings or AmdSettings()
        self.decision: Decision | None = None
        self._phase = _Phase.WAITING
        self._frames = 0
        self._pending = b""
        self._noise = -1.0  # set by the first frame
        self._speech_start = 0
        self._last_voice = 0
        self._tone: _ToneRun | None = None
        self.voice_ms = 0  # voiced audio heard, for the log

    @property
    def elapsed_ms(self) -> int:
        """The audio fed so far, in whole frames."""
        return self._frames * FRAME_MS

    def feed(self, pcm: bytes) -> Decision | None:
        """Take native-endian 16-bit samples at 8 kHz; the decision once made (the same one on every later call)."""
        if self.decision is not None:
            return self.decision
        data = self._pending + pcm
        whole = len(data) - len(data) % (FRAME_SAMPLES * 2)
        self._pending = data[whole:]
        samples = np.frombuffer(data[:whole], dtype=np.int16).astype(np.float64)
        for start in range(0, samples.size, FRAME_SAMPLES):
            decision = self._frame(samples[start:start + FRAME_SAMPLES])
            if decision is not None:
                self._pending = b""
                return decision
        return None

    def expire(self) -> Decision:
        """The audio stopped coming before `timeout_ms` (or the caller's clock ran out): decide with what was heard."""
        if self.decision is None:
            return self._timeout("no audio")
        return self.decision

    # -- per frame ------------------------------------------------------------------------------
    def _frame(self, frame: npt.NDArray[np.float64]) -> Decision | None:
        self._frames += 1
        now = self.elapsed_ms
        kind, freq = self._classify(frame)
        decision = self._tones(kind, freq, now)
        if decision is None:
            decision = self._cadence(kind, now)
        if decision is None and now >= self.settings.timeout_ms:
            decision = self._timeout("timeout")
        return decision

    def _classify(self, frame: npt.NDArray[np.float64]) -> tuple[_Kind, float]:
        level = float(np.sqrt(np.mean(np.square(frame - frame.mean()))))
        if self._noise < 0.0:
            self._noise = min(max(level, 1.0), NOISE_START_MAX)
        elif level < self._noise:
            self._noise = 0.7 * self._noise + 0.3 * max(level, 1.0)
        else:
            self._noise = min(self._noise * NOISE_RISE, level)
        if level < max(MIN_VOICE_RMS, self._noise * VOICE_OVER_NOISE):
            return _Kind.SILENCE, 0.0
        freq = tone_of(frame)
        if freq is not None:
            return _Kind.TONE, freq
        self.voice_ms += FRAME_MS
        return _Kind.VOICE, 0.0

    def _tones(self, kind: _Kind, freq: float, now: int) -> Decision | None:
        """Track steady tones: a fax tone decides while it sounds, a beep when it ends."""
        run = self._tone
        if kind is _Kind.TONE and run is not None and abs(freq - run.freq) <= TONE_DRIFT:
            run.frames += 1
            run.freq_sum += freq
        else:
            self._tone = _ToneRun(now - FRAME_MS, 1, freq) if kind is _Kind.TONE else None
            if run is not None and run.ms >= BEEP_MIN_MS and BEEP_RANGE[0] <= run.freq <= BEEP_RANGE[1]:
                return self._beep(run, now)
            return None
        if (self._phase is _Phase.WAITING and run.ms >= FAX_MIN_MS
                and any(abs(run.freq - f) <= FAX_TOLERANCE for f in FAX_TONES)):
            return self._decide(AnsweredBy.FAX, now, f"{run.freq:.0f} Hz for {run.ms} ms before any voice")
        return None

    def _beep(self, run: _ToneRun, now: int) -> Decision:
        what = f"beep of {run.freq:.0f} Hz, {run.ms} ms"
        if self.settings.detect_message_end:
            return self._decide(AnsweredBy.MACHINE_END_BEEP, now, what)
        return self._decide(AnsweredBy.MACHINE_START, now, what)

    def _cadence(self, kind: _Kind, now: int) -> Decision | None:
        """Greeting length and cadence: the speech activity's start, gaps and end."""
        s = self.settings
        voiced = kind is _Kind.VOICE
        if self._phase is _Phase.WAITING:
            if voiced:
                self._phase = _Phase.SPEECH
                self._speech_start = now - FRAME_MS
                self._last_voice = now
            elif now >= s.silence_timeout_ms:
                return self._decide(AnsweredBy.UNKNOWN, now, f"no speech in the first {s.silence_timeout_ms} ms")
            return None
        if voiced:
            self._last_voice = now
        elif kind is _Kind.TONE:
            return None  # a tone sounding is no end of speech: it may be the beep, which decides when it ends
        if self._phase is _Phase.SPEECH:
            length = self._last_voice - self._speech_start
            if length >= s.speech_threshold_ms:
                if not s.detect_message_end:
                    return self._decide(AnsweredBy.MACHINE_START, now, f"speech longer than {s.speech_threshold_ms} ms")
                self._phase = _Phase.MACHINE
            elif now - self._last_voice >= s.speech_end_threshold_ms:
                return self._decide(AnsweredBy.HUMAN, now, f"{length} ms of speech, then silence")
            return None
        if now - self._last_voice >= s.speech_end_threshold_ms + BEEP_GRACE_MS:  # a machine's greeting ended
            return self._decide(AnsweredBy.MACHINE_END_SILENCE, now,
                                f"greeting of {self._last_voice - self._speech_start} ms, then silence")
        return None

    def _timeout(self, why: str) -> Decision:
        now = self.elapsed_ms
        if self._phase is _Phase.MACHINE:
            return self._decide(AnsweredBy.MACHINE_END_OTHER, now, f"{why}: the greeting had not ended")
        return self._decide(AnsweredBy.UNKNOWN, now, why)

    def _decide(self, answered_by: AnsweredBy, now: int, reason: str) -> Decision:
        self._phase = _Phase.DONE
        self.decision = Decision(answered_by, now, reason)
        return self.decision


def detect(pcm: bytes, settings: AmdSettings | None = None) -> Decision:
    """Run a detector over a whole recording: its decision, or what `expire` makes of it at the end."""
    detector = AmdDetector(settings)
    return detector.feed(pcm) or detector.expire()
