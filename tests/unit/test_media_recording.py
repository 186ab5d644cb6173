"""media.trim and media.recording: silence trimming and final files from the workers' raw PCM legs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from media.audio import BRIDGE_RATE, AudioError, read_wav, to_pcm16
from media.recording import convert, finalize, leg_path
from media.trim import trim_silence

RATE = BRIDGE_RATE


def tone(freq: float, seconds: float, amplitude: float = 0.3) -> npt.NDArray[np.int16]:
    return to_pcm16(amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * RATE)) / RATE))


def silence(seconds: float) -> npt.NDArray[np.int16]:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def band_share(samples: npt.ArrayLike, freq: float) -> float:
    """Fraction of the signal's energy within 20 Hz of `freq`."""
    x = np.asarray(samples, dtype=np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    return float(power[np.abs(freqs - freq) < 20].sum() / max(power.sum(), 1e-12))


def write_legs(base: Path, leg0: npt.NDArray[np.int16], leg1: npt.NDArray[np.int16] | None, cut: int = 0) -> None:
    leg_path(base, 0).write_bytes(leg0.astype("<i2").tobytes())
    if leg1 is not None:
        data = leg1.astype("<i2").tobytes()
        leg_path(base, 1).write_bytes(data[: len(data) - cut])


# --- trim -------------------------------------------------------------------------------------------


def test_trim_removes_leading_and_trailing_silence() -> None:
    body = tone(440, 1.0)
    audio = np.concatenate([silence(0.5), body, silence(0.7)])
    cut = trim_silence(audio, RATE, hangover_ms=0)
    assert abs(cut.size - body.size) <= 0.02 * RATE
    kept = trim_silence(audio, RATE)  # default 100 ms hangover each side
    assert abs(kept.size - (body.size + 0.2 * RATE)) <= 0.02 * RATE
    assert np.array_equal(kept, audio[int(0.4 * RATE) : int(0.4 * RATE) + kept.size])


def test_trim_keeps_dual_alignment() -> None:
    n0 = np.concatenate([silence(0.5), tone(440, 0.5), silence(1.0)])  # caller speaks first
    n1 = np.concatenate([silence(1.2), tone(1000, 0.3), silence(0.5)])  # callee answers later
    dual = np.stack([n0, n1], axis=1)
    cut = trim_silence(dual, RATE, hangover_ms=0)
    assert cut.shape[1] == 2
    assert abs(cut.shape[0] - 1.0 * RATE) <= 0.02 * RATE  # from 0.5 s (leg0 starts) to 1.5 s (leg1 ends)
    offset = int(0.5 * RATE)
    assert np.array_equal(cut, dual[offset : offset + cut.shape[0]])


def test_trim_all_silent_and_quiet_noise_is_empty() -> None:
    assert trim_silence(silence(1.0), RATE).size == 0
    noise = to_pcm16(np.random.default_rng(1).normal(0, 0.001, RATE))  # about -60 dBFS
    assert trim_silence(noise, RATE).size == 0
    assert trim_silence(np.zeros((RATE, 2), dtype=np.int16), RATE).shape == (0, 2)
    assert trim_silence(np.zeros(0, dtype=np.int16), RATE).size == 0


# --- finalize ---------------------------------------------------------------------------------------


def test_dual_keeps_each_leg_on_its_channel(tmp_path: Path) -> None:
    base = tmp_path / "RE1"
    write_legs(base, tone(440, 1.0), tone(1000, 0.8))  # leg1 shorter: padded
    info = finalize(base, tmp_path / "RE1.wav", channels=2, trim=False, fmt="wav")
    samples, rate = read_wav(info.path)
    assert rate == RATE and samples.shape == (RATE, 2)
    assert info.channels == 2 and info.samples == RATE and info.duration_seconds == pytest.approx(1.0)
    assert band_share(samples[:, 0], 440) > 0.95 and band_share(samples[:, 0], 1000) < 0.01
    assert band_share(samples[:, 1], 1000) > 0.95 and band_share(samples[:, 1], 440) < 0.01
    assert not samples[int(0.8 * RATE) :, 1].any()
    assert sf.info(str(info.path)).subtype == "PCM_16"


def test_mono_mixes_both_legs_without_wrapping(tmp_path: Path) -> None:
    base = tmp_path / "RE2"
    write_legs(base, tone(440, 1.0, 0.9), tone(1000, 1.0, 0.9))
    info = finalize(base, tmp_path / "RE2.wav", channels=1)
    samples, _ = read_wav(info.path)
    assert samples.shape == (RATE,) and info.channels == 1
    assert band_share(samples, 440) > 0.3 and band_share(samples, 1000) > 0.3
    wide = tone(440, 1.0, 0.9).astype(np.int32) + tone(1000, 1.0, 0.9)
    assert np.array_equal(samples, np.clip(wide, -32768, 32767))  # clipped, never wrapped around


def test_truncated_and_missing_legs(tmp_path: Path) -> None:
    base = tmp_path / "RE3"
    write_legs(base, tone(440, 0.5), tone(1000, 0.5), cut=1)  # leg1 ends with half a sample
    info = finalize(base, tmp_path / "RE3.wav", channels=2)
    assert info.samples == int(0.5 * RATE)
    solo = tmp_path / "RE4"
    write_legs(solo, tone(440, 0.5), None)
    mono = finalize(solo, tmp_path / "RE4.wav", channels=1)
    samples, _ = read_wav(mono.path)
    assert np.array_equal(samples, tone(440, 0.5))
    dual = finalize(solo, tmp_path / "RE4d.wav", channels=2)
    samples, _ = read_wav(dual.path)
    assert samples.shape == (int(0.5 * RATE), 2) and not samples[:, 1].any()
    with pytest.raises(AudioError):
        finalize(tmp_path / "nothing", tmp_path / "nothing.wav")


def test_trimmed_mp3_decodes_back(tmp_path: Path) -> None:
    base = tmp_path / "RE5"
    write_legs(base, np.concatenate([silence(0.5), tone(440, 1.0), silence(0.7)]), None)
    info = finalize(base, tmp_path / "RE5.mp3", channels=1, trim=True, fmt="mp3")
    assert info.duration_seconds == pytest.approx(1.2, abs=0.02)
    samples, rate = sf.read(str(info.path), dtype="int16")
    assert rate == RATE and abs(samples.size - info.samples) < 0.05 * RATE
    assert band_share(samples, 440) > 0.8


def test_convert_stored_wav_to_mp3(tmp_path: Path) -> None:
    base = tmp_path / "RE6"
    write_legs(base, tone(440, 1.0), tone(1000, 1.0))
    info = finalize(base, tmp_path / "RE6.wav", channels=2)
    assert convert(info.path, "wav") == info.path.read_bytes()
    samples, rate = sf.read(io.BytesIO(convert(info.path, "mp3")), dtype="int16")
    assert rate == RATE and samples.shape[1] == 2
    assert band_share(samples[:, 0], 440) > 0.8 and band_share(samples[:, 1], 1000) > 0.8
    silent = tmp_path / "RE7"
    write_legs(silent, silence(1.0), None)
    empty = finalize(silent, tmp_path / "RE7.mp3", trim=True, fmt="mp3")
    assert empty.samples == 0 and empty.path.stat().st_size > 0
