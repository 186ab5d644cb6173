"""`<Say>`'s synthesis cache (`media.speech.Speech`) in a deep data directory: espeak-ng cuts a `-w` path of more
than 200 bytes short and still exits 0, so the switch must never hand it one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media.audio import read_wav
from media.speech import Speech
from media.tones import rms


@pytest.mark.slow  # runs espeak-ng (which make installs): not in the fast tier's pure code
async def test_a_cache_under_a_long_path_synthesizes(tmp_path: Path) -> None:
    root = tmp_path / ("d" * 120) / ("e" * 100) / "cache" / "speech"
    assert len(str(root / ("say-" + "0" * 64 + ".wav"))) > 300
    path = await Speech(root).synthesize("Press one for sales")
    samples, rate = read_wav(path)
    assert rate == 8000 and 0.8 < len(samples) / rate < 4 and rms(np.asarray(samples, dtype=np.float64)) > 300
    assert sorted(p.name for p in root.iterdir()) == [path.name]  # nothing left beside it
