"""`[speech]` in softswitch.toml: which recognizer `<Gather input="speech">` and `<Record transcribe>` use.

    [speech]
    engine = "pocketsphinx"   # the default: offline, the en-US model inside the pocketsphinx package; or "http"
    url = "http://127.0.0.1:8000/v1/audio/transcriptions"  # with engine = "http": an OpenAI-style endpoint
    model = "whisper-1"       # the `model` field posted to it (default whisper-1)
    api_key = "sk-..."        # optional: sent as `Authorization: Bearer ...`
    timeout = 30              # seconds one transcription request may take (default 30)
    preload = true            # pocketsphinx's models (~120 MB) load at start (the default), or at the first use:
                              # false saves the memory on a switch that never hears speech, but the first
                              # recognition then holds the control plane for about a third of a second
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switch.core.config_schema import check_url
from switch.core.errors import ConfigError

ENGINES = ("pocketsphinx", "http")


@dataclass(frozen=True)
class SpeechConfig:
    """The `[speech]` table (see the module docstring)."""

    engine: str = "pocketsphinx"
    url: str | None = None
    model: str = "whisper-1"
    api_key: str | None = None
    timeout: float = 30.0
    preload: bool = True


def load_speech(table: dict[str, Any]) -> SpeechConfig:
    """`[speech]`, already checked for known keys and their types (`config_schema`), checked for values."""
    engine = str(table.get("engine", "pocketsphinx")).lower()
    if engine not in ENGINES:
        raise ConfigError(f"speech.engine must be one of {', '.join(ENGINES)}, not {table['engine']!r}")
    url = table.get("url")
    check_url(url, "speech.url")
    if engine == "http" and not url:
        raise ConfigError('speech.url is required with speech.engine = "http"')
    timeout = float(table.get("timeout", 30.0))
    if timeout <= 0:
        raise ConfigError(f"speech.timeout must be a positive number of seconds, not {table['timeout']!r}")
    model = str(table.get("model", "whisper-1")).strip()
    if not model:
        raise ConfigError("speech.model must not be empty")
    return SpeechConfig(engine, url, model, table.get("api_key") or None, timeout, bool(table.get("preload", True)))
