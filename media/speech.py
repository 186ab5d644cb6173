"""Text-to-speech for `<Say>` with espeak-ng, cached as 8 kHz mono WAV files.

Twilio voice names map to espeak-ng voices: `man` to the language's voice with a male variant (`+m3`),
`woman`/`alice` and unknown names to a female variant (`+f3`), `Polly.*`/`Google.*` by the gender in a
small table (default female).  Text goes to espeak-ng on stdin (no shell, no argv parsing of the text), so
text starting with `-` is spoken, not taken as an option.  A cache hit is a dict lookup and one stat.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

from media.audio import AudioError, decode, to_bridge, write_wav

ESPEAK_PACKAGE = "espeak-ng"
"""Debian package that provides the espeak-ng binary."""

DEFAULT_LANGUAGE = "en-US"
FEMALE_VARIANT = "f3"
MALE_VARIANT = "m3"

LANGUAGES: dict[str, str] = {
    "en-us": "en-us", "en-gb": "en-gb", "en-au": "en-gb", "en-ca": "en-us", "en-in": "en-gb", "en-ie": "en-gb",
    "en-nz": "en-gb", "en-za": "en-gb", "es-es": "es", "es-mx": "es-419", "es-us": "es-419", "fr-fr": "fr-fr",
    "fr-ca": "fr-fr", "fr-be": "fr-be", "fr-ch": "fr-ch", "de-de": "de", "it-it": "it", "pt-br": "pt-br",
    "pt-pt": "pt", "nl-nl": "nl", "ja-jp": "ja", "zh-cn": "cmn", "zh-tw": "cmn", "zh-hk": "yue", "ko-kr": "ko",
    "ru-ru": "ru", "pl-pl": "pl", "sv-se": "sv", "da-dk": "da", "nb-no": "nb", "fi-fi": "fi", "tr-tr": "tr",
}  # fmt: skip
"""Twilio language codes (lower-cased) to espeak-ng voice names; others fall back to their primary subtag."""

POLLY_VOICES: dict[str, tuple[str, str]] = {
    "joanna": ("f", "en-US"), "salli": ("f", "en-US"), "kendra": ("f", "en-US"), "kimberly": ("f", "en-US"),
    "ivy": ("f", "en-US"), "ruth": ("f", "en-US"), "danielle": ("f", "en-US"), "matthew": ("m", "en-US"),
    "joey": ("m", "en-US"), "justin": ("m", "en-US"), "kevin": ("m", "en-US"), "stephen": ("m", "en-US"),
    "gregory": ("m", "en-US"), "amy": ("f", "en-GB"), "emma": ("f", "en-GB"), "brian": ("m", "en-GB"),
    "arthur": ("m", "en-GB"), "nicole": ("f", "en-AU"), "olivia": ("f", "en-AU"), "russell": ("m", "en-AU"),
    "aditi": ("f", "en-IN"), "raveena": ("f", "en-IN"), "conchita": ("f", "es-ES"), "lucia": ("f", "es-ES"),
    "enrique": ("m", "es-ES"), "sergio": ("m", "es-ES"), "mia": ("f", "es-MX"), "andres": ("m", "es-MX"),
    "lupe": ("f", "es-US"), "penelope": ("f", "es-US"), "miguel": ("m", "es-US"), "pedro": ("m", "es-US"),
    "celine": ("f", "fr-FR"), "lea": ("f", "fr-FR"), "mathieu": ("m", "fr-FR"), "remi": ("m", "fr-FR"),
    "chantal": ("f", "fr-CA"), "gabrielle": ("f", "fr-CA"), "liam": ("m", "fr-CA"), "marlene": ("f", "de-DE"),
    "vicki": ("f", "de-DE"), "hans": ("m", "de-DE"), "daniel": ("m", "de-DE"), "carla": ("f", "it-IT"),
    "bianca": ("f", "it-IT"), "giorgio": ("m", "it-IT"), "adriano": ("m", "it-IT"), "camila": ("f", "pt-BR"),
    "vitoria": ("f", "pt-BR"), "ricardo": ("m", "pt-BR"), "thiago": ("m", "pt-BR"), "ines": ("f", "pt-PT"),
    "cristiano": ("m", "pt-PT"), "mizuki": ("f", "ja-JP"), "takumi": ("m", "ja-JP"), "lotte": ("f", "nl-NL"),
    "ruben": ("m", "nl-NL"),
}  # fmt: skip
"""Amazon Polly voice names (lower-cased, without -Neural/-Generative) to (gender, language)."""

GOOGLE_MALE = {"en-us": "ABDIJ", "en-gb": "BDO", "en-au": "BD", "en-in": "BC", "es-es": "BE", "es-us": "BC",
               "fr-fr": "BDG", "fr-ca": "BD", "de-de": "BDEH", "it-it": "CD", "pt-br": "BC", "ja-jp": "CD"}  # fmt: skip
"""Google voice letters (e.g. `Google.en-US-Standard-D`) that are male, per language; the rest are female."""


class Speech:
    """Synthesizes text to cached 8 kHz mono WAV files under `root`."""

    def __init__(self, root: Path, *, binary: str = "espeak-ng", words_per_minute: int = 160, timeout: float = 30.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.words_per_minute = words_per_minute
        self.timeout = timeout
        self._done: dict[str, Path] = {}
        self._inflight: dict[str, asyncio.Task[Path]] = {}

    async def synthesize(self, text: str, voice: str = "alice", language: str | None = None) -> Path:
        """The WAV file of `text` spoken by Twilio `voice` in `language` (e.g. en-US), synthesized once."""
        espeak = espeak_voice(voice, language)
        key = hashlib.sha256(json.dumps([text, espeak, self.words_per_minute]).encode()).hexdigest()
        path = self._done.get(key)
        if path is not None and path.exists():
            return path
        path = self.root / f"say-{key}.wav"
        if path.exists():
            self._done[key] = path
            return path
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._synthesize(text, espeak, path))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    async def _synthesize(self, text: str, espeak: str, path: Path) -> Path:
        if not text.strip():
            raise AudioError("nothing to say: the text is empty")
        binary = shutil.which(self.binary)
        if binary is None:
            raise AudioError(f"{self.binary} not found: install the Debian package {ESPEAK_PACKAGE} (apt-get install)")
        # WAV on stdout: espeak-ng keeps a `-w` path in a 200-byte buffer and cuts longer ones short silently
        args = [binary, "-b", "1", "-v", espeak, "-s", str(self.words_per_minute), "--stdout", "--stdin"]
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            wav, err = await asyncio.wait_for(proc.communicate(text.encode()), self.timeout)
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise AudioError(f"{self.binary} timed out after {self.timeout:g} s") from exc
        if proc.returncode != 0 or not wav:
            message = err.decode(errors="replace").strip() or "no audio"
            raise AudioError(f"{self.binary} -v {espeak} failed ({proc.returncode}): {message}")
        await asyncio.to_thread(_convert, wav, path)
        return path

    def _finished(self, key: str, task: asyncio.Task[Path]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled() and task.exception() is None:
            self._done[key] = task.result()


def espeak_voice(voice: str, language: str | None = None) -> str:
    """The espeak-ng voice (`<language>+<variant>`) for a Twilio `voice` and `language` (None: the default)."""
    name = voice.strip()
    lowered = name.lower()
    gender = "f"
    if lowered == "man":
        gender = "m"
    elif lowered.startswith("polly."):
        known = POLLY_VOICES.get(lowered[6:].split("-")[0])
        if known is not None:
            gender, language = known[0], language or known[1]
    elif lowered.startswith("google."):
        parts = lowered[7:].split("-")  # google.<ll>-<CC>-<Kind>-<Letter>
        if len(parts) >= 4:
            tag = "-".join(parts[:2])
            language = language or tag
            gender = "m" if parts[-1].upper() in GOOGLE_MALE.get(tag, "") else "f"
    return f"{espeak_language(language or DEFAULT_LANGUAGE)}+{MALE_VARIANT if gender == 'm' else FEMALE_VARIANT}"


def espeak_language(language: str) -> str:
    """The espeak-ng voice name of a language code such as en-US or es-ES."""
    tag = language.strip().lower().replace("_", "-")
    if tag in LANGUAGES:
        return LANGUAGES[tag]
    primary = tag.split("-")[0]
    if not primary.isalpha():
        raise AudioError(f"unsupported language {language!r}")
    return primary


def _convert(wav: bytes, path: Path) -> None:
    """espeak's WAV at 8 kHz into `path`, whole or not at all (written aside, then renamed over it)."""
    samples, rate = decode(wav)
    aside = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.wav")
    try:
        write_wav(aside, to_bridge(samples, rate))
        os.replace(aside, path)
    finally:
        aside.unlink(missing_ok=True)
