"""A browser softphone for tests: Debian's headless Chromium, driven by chromedriver, on the softphone page.

Chromium gets fake media: its microphone is a WAV file of a sine tone this module writes (``tone_hz``), and the
permission prompt is answered yes.  The page (``switch/dialects/twilio/client_static/index.html``) publishes its
state in ``window.softswitchTest``; :meth:`BrowserPhone.state` reads it::

    with BrowserPhone(tone_hz=700) as phone:
        phone.open(f"{switch.base_url}/client/" + phone_query(token, codec="pcmu", autoaccept=True))
        phone.wait_for_event("registered", timeout=10)
        ...                                               # make the switch call client:alice
        sid = phone.wait_for_event("accept:", timeout=10).split(":", 1)[1]
        phone.wait_heard(440, tolerance=15, timeout=5)      # the page's AnalyserNode on the remote audio
        phone.wait_until(lambda s: s["codec"] == "audio/PCMU", "PCMU negotiated")  # from getStats, ~0.5 s late
        phone.run("softswitchPage.digits('12#')")
        phone.close_tab()                                 # the server sees the socket close and ends the call

Outgoing: ``phone.run("return softswitchPage.call('+15551234', {Custom: 'x'})")`` (resolves to the call's
client id; ``accept:CA...`` follows in the events once the server answered).  :meth:`BrowserPhone.close` quits
Chromium; use the class as a context manager so that happens on errors too.  WebRTC stays on loopback: the page
is asked to offer only its 127.0.0.1 candidates (``ice=loopback``) and no STUN server is configured.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlencode

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

STATIC_DIR = Path(__file__).resolve().parents[2] / "switch" / "dialects" / "twilio" / "client_static"


def write_tone_wav(path: Path, hz: float, rate: int = 48000, seconds: float = 1.0, amplitude: float = 0.5) -> Path:
    """A mono 16-bit sine WAV; a whole number of cycles per second so Chromium's looping of it has no click."""
    frames = int(rate * seconds)
    scale = amplitude * 32767
    data = b"".join(struct.pack("<h", round(scale * math.sin(2 * math.pi * hz * i / rate))) for i in range(frames))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return path


def phone_query(token: str = "", *, codec: str | None = None, autoregister: bool = True,
                autoaccept: bool | None = None, autoreject: bool = False, ice: str = "loopback") -> str:
    """The page's query string (with the leading '?') for the options the page reads."""
    query: dict[str, str] = {}
    if token:
        query["token"] = token
    if autoregister:
        query["autoregister"] = "1"
    if codec:
        query["codec"] = codec
    if autoaccept is not None:
        query["autoaccept"] = "1" if autoaccept else "0"
    if autoreject:
        query["autoreject"] = "1"
    if ice:
        query["ice"] = ice
    return "?" + urlencode(query)


class BrowserPhone:
    """One headless Chromium with a fake microphone playing a `tone_hz` sine, on one page at a time."""

    def __init__(self, tone_hz: float = 700.0, rate: int = 48000, workdir: Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="browserphone-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.tone_hz = tone_hz
        self.wav = write_tone_wav(self.workdir / f"tone-{tone_hz:g}.wav", tone_hz, rate)
        self.driver: webdriver.Chrome | None = None
        self._window: str | None = None

    # lifecycle

    def start(self) -> BrowserPhone:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in (
            "--headless=new", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,900",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={self.wav}",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--no-first-run", "--no-default-browser-check",
        ):
            options.add_argument(arg)
        if os.geteuid() == 0:
            options.add_argument("--no-sandbox")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(options=options, service=service)
        self._window = self.driver.current_window_handle
        return self

    def close(self) -> None:
        """Quit Chromium (idempotent) and remove the tone file's directory."""
        driver, self.driver = self.driver, None
        try:
            if driver is not None:
                driver.quit()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> BrowserPhone:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def web(self) -> webdriver.Chrome:
        if self.driver is None:
            raise RuntimeError("the browser is not running (start() it, or use `with BrowserPhone() as phone`)")
        return self.driver

    # the page

    def open(self, url: str) -> None:
        """Load `url` in a fresh tab (the previous one, if closed, is replaced) and wait for the page's state."""
        web = self.web
        if self._window not in web.window_handles:
            web.switch_to.new_window("tab")
            self._window = web.current_window_handle
        web.get(url)
        self.wait_until(lambda s: True, "the page's window.softswitchTest", timeout=10)

    def run(self, script: str, *args: Any) -> Any:
        """Run `script` in the page (a function body: `return ...` gives a value; a returned Promise is awaited)."""
        return self.web.execute_script(script, *args)

    def state(self) -> dict[str, Any]:
        """The page's window.softswitchTest (events, registered, identity, callSid, heard, codec, ...)."""
        value = self.run("return window.softswitchTest || null")
        return value if isinstance(value, dict) else {}

    def events(self) -> list[str]:
        return list(self.state().get("events", []))

    def heard_hz(self) -> float:
        return float(self.state().get("heard", {}).get("hz", 0.0))

    def heard_level(self) -> float:
        return float(self.state().get("heard", {}).get("level", 0.0))

    def wait_until(self, predicate: Callable[[dict[str, Any]], Any], what: str, timeout: float = 10.0) -> Any:
        """Poll the page's state until `predicate(state)` is true; on a timeout fail with the state and log."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run("return window.softswitchTest || null")
            result = predicate(value) if isinstance(value, dict) else None
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not within {timeout} s; page state {value}\n{self.describe()}")
            time.sleep(0.1)

    def wait_for_event(self, prefix: str, timeout: float = 10.0) -> str:
        """The first event starting with `prefix` (e.g. "incoming:", "accept:CA12..", "registered")."""
        def found(state: dict[str, Any]) -> str | None:
            return next((e for e in state.get("events", []) if e.startswith(prefix)), None)
        result: str = self.wait_until(found, f"the event {prefix!r}", timeout)
        return result

    def wait_heard(self, hz: float, tolerance: float = 15.0, timeout: float = 10.0,
                   min_level: float = 0.005) -> dict[str, Any]:
        """Wait until the page hears a tone of about `hz` louder than `min_level`; returns the `heard` reading.
        (A reading taken while the audio ramps up has the right pitch at a lower level.)"""
        def near(state: dict[str, Any]) -> dict[str, Any] | None:
            heard = state.get("heard") or {}
            return heard if heard.get("level", 0) > min_level and abs(heard.get("hz", 0) - hz) <= tolerance else None
        result: dict[str, Any] = self.wait_until(near, f"hearing {hz} Hz", timeout)
        return result

    def close_tab(self) -> None:
        """Close the page's tab mid-call (its WebSocket closes); a blank tab keeps Chromium running."""
        web = self.web
        page = self._window or web.current_window_handle
        web.switch_to.new_window("tab")
        blank = web.current_window_handle
        web.switch_to.window(page)
        web.close()
        web.switch_to.window(blank)
        self._window = blank

    def browser_log(self) -> list[dict[str, Any]]:
        """The browser console's entries since the last call (level, message, timestamp)."""
        try:
            get_log = cast(Callable[[str], list[dict[str, Any]]], self.web.get_log)
            return list(get_log("browser"))
        except WebDriverException:
            return []

    def describe(self) -> str:
        """The page's log lines and the console's messages, for assertion messages."""
        try:
            lines = self.run("return [...document.querySelectorAll('#log li')].map((li) => li.textContent)") or []
        except WebDriverException as exc:
            lines = [f"(no page: {exc.msg})"]
        console = [f"{e.get('level')} {e.get('message')}" for e in self.browser_log()]
        return "page log (newest first):\n" + "\n".join(lines) + "\nconsole:\n" + "\n".join(console)
