"""Leading and trailing silence removal for recordings (Twilio's `Trim="trim-silence"`).

Silence is decided on 20 ms windows: a window is active when the RMS of any channel in it reaches
`threshold_db` dBFS (absolute, 0 dBFS = full-scale int16).  Everything before the first and after the last
active window is cut, keeping `hangover_ms` either side; all channels are cut at the same sample, so a
dual-channel recording stays aligned.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WINDOW_MS = 20
"""Length of the RMS analysis windows."""

_BLOCK_WINDOWS = 4096


def trim_silence(
    channels: npt.NDArray[np.int16],
    rate: int,
    threshold_db: float = -40.0,
    hangover_ms: int = 100,
) -> npt.NDArray[np.int16]:
    """Cut leading and trailing silence from int16 audio of shape (n,) or (n, c); all-silent gives length 0."""
    x = np.asarray(channels)
    if x.ndim not in (1, 2):
        raise ValueError(f"expected shape (n,) or (n, channels), got {x.shape}")
    n = x.shape[0]
    window = max(1, rate * WINDOW_MS // 1000)
    if n == 0:
        return x[:0].copy()
    count = -(-n // window)
    frames = np.zeros((count * window, x.reshape(n, -1).shape[1]), dtype=np.int16)
    frames[:n] = x.reshape(n, -1)
    rms = np.empty(count)
    for first in range(0, count, _BLOCK_WINDOWS):  # in blocks: an hour of audio needs no big float copy
        block = frames[first * window : (first + _BLOCK_WINDOWS) * window].astype(np.float64)
        power = np.square(block).reshape(-1, window, block.shape[1]).mean(axis=1)
        rms[first : first + power.shape[0]] = np.sqrt(power.max(axis=1))
    rms[-1] *= np.sqrt(window / (n - (count - 1) * window))  # the last window may be partial
    active = np.flatnonzero(rms >= 32768.0 * 10.0 ** (threshold_db / 20.0))
    if active.size == 0:
        return x[:0].copy()
    hangover = rate * hangover_ms // 1000
    start = max(0, int(active[0]) * window - hangover)
    end = min(n, (int(active[-1]) + 1) * window + hangover)
    return x[start:end].copy()
