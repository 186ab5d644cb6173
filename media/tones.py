"""Test tones and the measurements used to check them: pure numpy, 16-bit mono PCM.

Generate a tone, write it as a WAV, and later ask what a recording heard::

    write_wav(path, sine(1000.0, 2.0))
    samples, rate = read_wav(recorded)
    assert abs(dominant_frequency(samples[2400:], rate) - 1000.0) < 10
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["RINGBACK", "band_energy_ratio", "dominant_frequency", "ringback", "rms", "sine"]

Samples = npt.NDArray[np.int16]
"""Mono 16-bit PCM samples."""

_FULL_SCALE = 32767.0


def sine(freq_hz: float, seconds: float, rate: int = 8000, amplitude: float = 0.5) -> Samples:
    """A sine of ``freq_hz`` lasting ``seconds``, as int16 samples at ``rate`` Hz.

    ``amplitude`` is a fraction of full scale (0..1).  The phase starts at 0; a tone whose period
    divides the length loops without a click (e.g. 1000 Hz or 440 Hz over whole seconds).
    """
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError(f"amplitude must be within 0..1, got {amplitude}")
    count = round(seconds * rate)
    t = np.arange(count, dtype=np.float64) / rate
    wave = np.sin(2.0 * np.pi * freq_hz * t) * (amplitude * _FULL_SCALE)
    return np.round(wave).astype(np.int16)


def _as_float(samples: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(samples, dtype=np.float64).reshape(-1)


def _power_spectrum(samples: npt.ArrayLike, rate: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    data = _as_float(samples)
    if data.size < 2:
        raise ValueError("need at least 2 samples")
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size))) ** 2
    freqs = np.fft.rfftfreq(data.size, d=1.0 / rate)
    return freqs.astype(np.float64), spectrum.astype(np.float64)


def dominant_frequency(samples: npt.ArrayLike, rate: int) -> float:
    """The frequency (Hz) of the strongest FFT bin of ``samples`` (Hann window, DC removed).

    The peak is refined by parabolic interpolation over its neighbours, so one second of audio is
    accurate to well under a hertz.  Silence returns 0.0.
    """
    freqs, power = _power_spectrum(samples, rate)
    power[0] = 0.0
    peak = int(np.argmax(power))
    if power[peak] <= 0.0:
        return 0.0
    offset = 0.0
    if 0 < peak < power.size - 1:
        a, b, c = np.log(power[peak - 1 : peak + 2] + 1e-12)
        denom = a - 2.0 * b + c
        if denom != 0.0:
            offset = 0.5 * (a - c) / denom
    return float(freqs[peak] + offset * (freqs[1] - freqs[0]))


def band_energy_ratio(samples: npt.ArrayLike, rate: int, freq: float, width: float = 20.0) -> float:
    """The share (0..1) of the signal's energy (DC excluded) within ``freq`` ± ``width`` Hz."""
    freqs, power = _power_spectrum(samples, rate)
    power[0] = 0.0
    total = float(power.sum())
    if total <= 0.0:
        return 0.0
    band = (freqs >= freq - width) & (freqs <= freq + width)
    return float(power[band].sum()) / total


def rms(samples: npt.ArrayLike) -> float:
    """Root mean square of ``samples`` in their own units (0.0 for no samples)."""
    data = _as_float(samples)
    if data.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(data * data)))


# Ringback cadences by Twilio ringTone country code: (frequencies, [(on s, off s), ...]).
RINGBACK: dict[str, tuple[tuple[float, ...], tuple[tuple[float, float], ...]]] = {
    "us": ((440.0, 480.0), ((2.0, 4.0),)),
    "ca": ((440.0, 480.0), ((2.0, 4.0),)),
    "uk": ((400.0, 450.0), ((0.4, 0.2), (0.4, 2.0))),
    "gb": ((400.0, 450.0), ((0.4, 0.2), (0.4, 2.0))),
    "au": ((400.0, 425.0), ((0.4, 0.2), (0.4, 2.0))),
    "de": ((425.0,), ((1.0, 4.0),)),
    "fr": ((440.0,), ((1.5, 3.5),)),
    "it": ((425.0,), ((1.0, 4.0),)),
    "es": ((425.0,), ((1.5, 3.0),)),
    "nl": ((425.0,), ((1.0, 4.0),)),
    "in": ((400.0, 375.0), ((0.4, 0.2), (0.4, 2.0))),
    "jp": ((400.0,), ((1.0, 2.0),)),
}


def ringback(country: str = "us", rate: int = 8000) -> Samples:
    """One cycle of the country's ringback tone (us when unknown), to be played in a loop."""
    freqs, cadence = RINGBACK.get(country.lower(), RINGBACK["us"])
    parts: list[npt.NDArray[np.int16]] = []
    for on, off in cadence:
        tone = sum(sine(f, on, rate, amplitude=0.25).astype(np.int32) for f in freqs)
        parts.append(np.asarray(tone, dtype=np.int16))
        parts.append(np.zeros(int(off * rate), dtype=np.int16))
    return np.concatenate(parts)
