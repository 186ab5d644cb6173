"""The answering-machine detector (`media.amd`) on espeak-ng speech and synthetic tones, noise and silence.

Every class Twilio reports, in both modes (Enable, DetectMessageEnd), with the time the decision took; then sweeps
over voices, greetings, beeps and line noise that check the accuracy the e2e report quotes; then the Twilio
parameters' effect and the incremental interface (odd chunk sizes, one decision, `expire`).
"""

from __future__ import annotations

import numpy as np
import pytest

from media.amd import BEEP_GRACE_MS, FRAME_MS, AmdDetector, AmdSettings, AnsweredBy, Decision, detect
from media.ulaw import ulaw_decode, ulaw_encode
from tests.unit.test_amd_audio import (
    GREETING,
    SHORT_GREETINGS,
    VOICES,
    Samples,
    fax,
    human,
    join,
    machine_beep,
    machine_silence,
    nobody,
    silence,
    speech,
    tone,
    with_noise,
)

ENABLE = AmdSettings()
DETECT_END = AmdSettings(detect_message_end=True)


def run(samples: Samples, settings: AmdSettings = ENABLE) -> Decision:
    """The detector on what a call delivers: the samples through G.711 μ-law."""
    return detect(ulaw_decode(ulaw_encode(samples.tobytes())), settings)


def greeting_end_ms(voice: str = "woman", language: str = "en-US") -> int:
    return 500 + round(speech(GREETING, voice, language).size / 8)


# -- each class, with its time ------------------------------------------------------------------------------
def test_a_short_hello_then_silence_is_human_after_the_speech_end_threshold() -> None:
    hello_end = 500 + round(speech("Hello?", "man").size / 8)
    for settings in (ENABLE, DETECT_END):
        decision = run(human(), settings)
        assert decision.answered_by is AnsweredBy.HUMAN
        # the last voiced frame plus 1200 ms of silence (espeak's trailing quiet counts as silence)
        assert hello_end + 600 < decision.at_ms <= hello_end + 1200 + FRAME_MS


def test_a_long_greeting_is_machine_start_once_speech_passes_the_speech_threshold() -> None:
    decision = run(machine_beep())
    assert decision.answered_by is AnsweredBy.MACHINE_START
    assert 2400 + 500 <= decision.at_ms <= 2400 + 500 + 400  # speech from 0.5 s; gaps shorter than 1.2 s join it


def test_detect_message_end_waits_for_the_beep() -> None:
    decision = run(machine_beep(), DETECT_END)
    assert decision.answered_by is AnsweredBy.MACHINE_END_BEEP
    beep_end = greeting_end_ms() + 400 + 500
    assert beep_end <= decision.at_ms <= beep_end + 2 * FRAME_MS  # when the beep stops
    assert "1000 Hz" in decision.reason


def test_detect_message_end_without_a_beep_is_machine_end_silence() -> None:
    decision = run(machine_silence(), DETECT_END)
    assert decision.answered_by is AnsweredBy.MACHINE_END_SILENCE
    end = greeting_end_ms()
    assert end + 600 + BEEP_GRACE_MS < decision.at_ms <= end + 1200 + BEEP_GRACE_MS + FRAME_MS


def test_cng_is_fax_within_the_first_tone() -> None:
    for settings in (ENABLE, DETECT_END):
        decision = run(fax(), settings)
        assert decision.answered_by is AnsweredBy.FAX
        assert decision.at_ms == 300 + 400 + FRAME_MS or decision.at_ms == 300 + 400  # 400 ms into the first CNG


def test_ced_answer_tone_is_fax() -> None:
    assert run(join(silence(0.2), tone(2100.0, 3.0), silence(3.0))).answered_by is AnsweredBy.FAX


def test_silence_is_unknown_at_the_silence_timeout() -> None:
    for settings in (ENABLE, DETECT_END):
        decision = run(nobody(), settings)
        assert decision == Decision(AnsweredBy.UNKNOWN, 5000, decision.reason)


def test_a_greeting_that_never_ends_is_machine_end_other_at_the_timeout() -> None:
    endless = join(silence(0.5), *[speech(GREETING)] * 4)
    settings = AmdSettings(detect_message_end=True, timeout_ms=10_000)
    assert run(endless, settings) == Decision(AnsweredBy.MACHINE_END_OTHER, 10_000, run(endless, settings).reason)


def test_speech_that_keeps_the_detector_undecided_is_unknown_at_the_timeout() -> None:
    # thresholds that a conversation-like cadence never meets: 6 s of speech for a machine, 5 s of silence to end
    chatter = join(silence(0.3), *[join(speech("Hello?", "man"), silence(1.0))] * 6)
    settings = AmdSettings(timeout_ms=3000, speech_threshold_ms=6000, speech_end_threshold_ms=5000)
    assert run(chatter, settings).answered_by is AnsweredBy.UNKNOWN
    assert run(chatter, settings).at_ms == 3000


def test_a_beep_after_a_short_greeting_is_a_machine() -> None:
    short = join(silence(0.5), speech("Leave a message.", "woman"), silence(0.3), tone(850.0, 0.4), silence(8.0))
    assert run(short).answered_by is AnsweredBy.MACHINE_START
    assert run(short, DETECT_END).answered_by is AnsweredBy.MACHINE_END_BEEP


# -- accuracy sweeps --------------------------------------------------------------------------------------
@pytest.mark.parametrize("voice,language", VOICES)
@pytest.mark.parametrize("text", SHORT_GREETINGS)
def test_short_greetings_are_human(text: str, voice: str, language: str) -> None:
    decision = run(human(text, voice, language), DETECT_END)
    assert decision.answered_by is AnsweredBy.HUMAN, decision
    assert decision.at_ms < 4000


@pytest.mark.parametrize("gap_s", [0.0, 1.0])
def test_a_beep_right_after_the_greeting_or_a_second_later(gap_s: float) -> None:
    decision = run(machine_beep(gap_s=gap_s), DETECT_END)
    assert decision.answered_by is AnsweredBy.MACHINE_END_BEEP, decision


def test_a_click_is_no_beep_and_a_quiet_beep_is_one() -> None:
    click = join(silence(0.5), speech(GREETING), silence(0.4), tone(1000.0, 0.08), silence(10.0))
    assert run(click, DETECT_END).answered_by is AnsweredBy.MACHINE_END_SILENCE
    quiet = join(silence(0.5), speech(GREETING), silence(0.4), tone(1000.0, 0.5, level=0.03), silence(10.0))
    assert run(quiet, DETECT_END).answered_by is AnsweredBy.MACHINE_END_BEEP


@pytest.mark.parametrize("voice,language", VOICES)
@pytest.mark.parametrize("beep_hz,beep_s", [(440.0, 0.25), (850.0, 0.15), (1000.0, 0.5), (1400.0, 1.0),
                                            (1900.0, 0.3)])
def test_beeps_end_greetings(beep_hz: float, beep_s: float, voice: str, language: str) -> None:
    decision = run(machine_beep(beep_hz, beep_s, voice, language), DETECT_END)
    assert decision.answered_by is AnsweredBy.MACHINE_END_BEEP, decision
    beep_end = greeting_end_ms(voice, language) + 400 + round(beep_s * 1000)
    assert beep_end <= decision.at_ms <= beep_end + 2 * FRAME_MS


@pytest.mark.parametrize("dbfs", [-60.0, -50.0, -42.0, -36.0])
def test_line_noise_changes_no_answer(dbfs: float) -> None:
    cases = [(human(), AnsweredBy.HUMAN), (machine_beep(), AnsweredBy.MACHINE_END_BEEP),
             (machine_silence(), AnsweredBy.MACHINE_END_SILENCE), (fax(), AnsweredBy.FAX),
             (silence(12.0), AnsweredBy.UNKNOWN)]
    for samples, expected in cases:
        assert run(with_noise(samples, dbfs), DETECT_END).answered_by is expected, (expected, dbfs)


def test_a_quieter_line_and_a_louder_one() -> None:
    for gain in (0.1, 2.5):
        for samples, expected in [(human(), AnsweredBy.HUMAN), (machine_beep(), AnsweredBy.MACHINE_END_BEEP)]:
            scaled = np.clip(samples.astype(np.float64) * gain, -32768, 32767).astype(np.int16)
            assert run(scaled, DETECT_END).answered_by is expected, (expected, gain)


def test_speech_frames_are_never_taken_for_tones() -> None:
    """No 100 ms of any espeak voice looks like a beep: the long greeting with no beep never ends in one."""
    for voice, language in VOICES:
        assert run(machine_silence(voice, language), DETECT_END).answered_by is AnsweredBy.MACHINE_END_SILENCE


# -- the parameters ---------------------------------------------------------------------------------------
def test_the_speech_threshold_moves_the_line_between_human_and_machine() -> None:
    sentence = join(silence(0.5), speech("Hi, this is Sam, who is calling please?", "man"), silence(8.0))
    length = speech("Hi, this is Sam, who is calling please?", "man").size / 8
    assert 1500 < length < 3500
    assert run(sentence, AmdSettings(speech_threshold_ms=1000)).answered_by is AnsweredBy.MACHINE_START
    assert run(sentence, AmdSettings(speech_threshold_ms=6000)).answered_by is AnsweredBy.HUMAN


def test_the_speech_end_threshold_sets_when_a_human_is_decided() -> None:
    quick = run(human(), AmdSettings(speech_end_threshold_ms=500))
    slow = run(human(), AmdSettings(speech_end_threshold_ms=3000))
    assert (quick.answered_by, slow.answered_by) == (AnsweredBy.HUMAN, AnsweredBy.HUMAN)
    assert slow.at_ms - quick.at_ms == 2500


def test_the_silence_timeout_sets_when_silence_is_unknown() -> None:
    assert run(nobody(), AmdSettings(silence_timeout_ms=2000)).at_ms == 2000
    late_hello = join(silence(3.0), speech("Hello?", "man"), silence(5.0))
    assert run(late_hello, AmdSettings(silence_timeout_ms=2000)).answered_by is AnsweredBy.UNKNOWN
    assert run(late_hello, AmdSettings(silence_timeout_ms=5000)).answered_by is AnsweredBy.HUMAN


# -- the interface ----------------------------------------------------------------------------------------
def test_feeding_in_odd_chunks_decides_the_same_at_the_same_time() -> None:
    pcm = machine_beep().tobytes()
    whole = detect(pcm, DETECT_END)
    detector = AmdDetector(DETECT_END)
    decision = None
    for start in range(0, len(pcm), 334):  # 167 samples: never a whole frame
        decision = detector.feed(pcm[start:start + 334])
        if decision is not None:
            break
    assert decision == whole
    assert detector.feed(b"\x00\x00" * 800) == whole  # decided once; later audio changes nothing


def test_expire_decides_with_what_was_heard() -> None:
    detector = AmdDetector(DETECT_END)
    assert detector.feed(silence(1.0).tobytes()) is None
    assert detector.expire() == Decision(AnsweredBy.UNKNOWN, 1000, "no audio")
    greeting = AmdDetector(DETECT_END)
    assert greeting.feed(join(silence(0.5), speech(GREETING)[:8000 * 4]).tobytes()) is None
    assert greeting.expire().answered_by is AnsweredBy.MACHINE_END_OTHER


def test_detection_takes_little_time_per_frame() -> None:
    import time

    pcm = machine_beep().tobytes()
    started = time.perf_counter()
    detect(pcm, DETECT_END)
    frames = len(pcm) / 320
    assert (time.perf_counter() - started) / frames < 0.001  # well under a millisecond per 20 ms frame
