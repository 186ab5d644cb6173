"""The web console (switch/dialects/console) in a real headless Chromium, driven by chromedriver.

A real `softswitch serve`, a lab phone answering a call made with the official twilio client, and the console
opened with the account's credentials as a person would (user:password in the URL: the browser's Basic
authentication, reused for the page's fetches and its <audio>).  The live call shows on the index page; after
the hang-up the call page draws the whole timeline in order and the recording plays.  Wrong credentials: 401.
"""

from __future__ import annotations

import base64
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.peers.harness import ACCOUNT_SID, AUTH_TOKEN, SwitchProcess, WebhookSink, wait_until
from tests.peers.phone import PhoneProcess

HOLD = '<Response><Pause length="30"/></Response>'
CALLBACKS = ["initiated", "ringing", "answered", "completed"]


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000"):
        options.add_argument(arg)
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwitchProcess]:
    proc = SwitchProcess(tmp_path_factory.mktemp("console"), workers=1).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def _console(switch: SwitchProcess, path: str = "/console/", user: str = ACCOUNT_SID,
             password: str = AUTH_TOKEN) -> str:
    return f"http://{user}:{password}@127.0.0.1:{switch.http_port}{path}"


def _rows(driver: webdriver.Chrome, selector: str) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _until(driver: webdriver.Chrome, predicate: Callable[[webdriver.Chrome], Any], what: str,
           timeout: float = 10.0) -> None:
    """Wait for `predicate`; on a timeout, fail with what the page shows."""
    try:
        WebDriverWait(driver, timeout).until(predicate)
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{what}: not within {timeout} s; the page at {driver.current_url} shows:\n{body}") \
            from None


def _status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        assert exc.headers.get("WWW-Authenticate") == 'Basic realm="softswitch"' or exc.code != 401
        return int(exc.code)


def test_wrong_credentials_are_401(switch: SwitchProcess, browser: webdriver.Chrome) -> None:
    wrong = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{'0' * 32}".encode()).decode()
    right = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    for path in ("/console/", "/console/api/calls", "/console/api/health", "/console/static/console.js",
                 f"/console/calls/CA{'0' * 32}"):
        url = switch.base_url + path
        assert (_status(url), _status(url, wrong)) == (401, 401), path
    assert _status(switch.base_url + "/console/api/calls", right) == 200
    # the browser with the wrong token gets no console (headless Chromium leaves a 401 with a challenge blank)
    browser.get(_console(switch, password="0" * 32))
    assert browser.title == "" and not _rows(browser, "#live-calls")
    # with the right one it does
    browser.get(_console(switch))
    WebDriverWait(browser, 10).until(lambda d: d.title == "softswitch console" and _rows(d, "#live-calls"))


def test_live_call_timeline_and_recording(switch: SwitchProcess, browser: webdriver.Chrome, tmp_path: Path) -> None:
    sink = WebhookSink().start()
    try:
        _call_through_the_console(switch, browser, sink)
    finally:
        sink.stop()


def _call_through_the_console(switch: SwitchProcess, browser: webdriver.Chrome, sink: WebhookSink) -> None:
    client = switch.client()
    with PhoneProcess(["--answer", "auto", "--tone", "440"]) as phone:
        call = client.calls.create(to=phone.uri("alice"), from_="+15550123", url=sink.twiml("/voice", HOLD),
                                   record=True, status_callback=sink.url("/status"),
                                   status_callback_event=CALLBACKS)
        sink.wait_statuses("/status", call.sid, 3)  # answered
        browser.get(_console(switch))
        _until(browser, lambda d: _rows(d, f'#live-calls tr[data-sid="{call.sid}"][data-status="in-progress"]'),
               "the live call")
        live = _rows(browser, "#live-calls tbody tr")
        assert [r.get_attribute("data-sid") for r in live] == [call.sid]
        cells = [c.text for c in live[0].find_elements(By.TAG_NAME, "td")]
        assert cells[:5] == [call.sid, "outbound-api", "+15550123", phone.uri("alice"), "in-progress"], cells
        _until(browser, lambda d: d.find_element(By.ID, "health-status").text == "ok", "health ok")
        workers = _rows(browser, "#workers tbody tr")
        assert len(workers) == 1 and "1 / " in workers[0].text  # worker 0 holds the one leg
        time.sleep(1.0)  # some recorded audio
        client.calls(call.sid).update(status="completed")
        sink.wait_statuses("/status", call.sid, 4)
    wait_until(lambda: client.calls(call.sid).recordings.list()[0].status == "completed", 10, "recording done")
    recording = client.calls(call.sid).recordings.list()[0]

    # the index page: no live call now; the filters find the call, or not
    _until(browser, lambda d: not _rows(d, "#live-calls tr[data-sid]"), "no live call")
    browser.get(_console(switch, f"/console/?status=completed&direction=outbound-api&to={phone.uri('alice')}"))
    _until(browser, lambda d: _rows(d, f'#recent-calls tr[data-sid="{call.sid}"]'), "the call, filtered")
    browser.get(_console(switch, "/console/?direction=inbound"))
    _until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#recent-calls tbody").text == "no calls",
           "no inbound call")

    # the call page: the summary, the timeline in time order, the recording playing
    browser.get(_console(switch, f"/console/calls/{call.sid}"))
    _until(browser, lambda d: d.find_element(By.ID, "call-status").text == "completed"
           and _rows(d, "#recordings audio"), "the call page")
    assert browser.find_element(By.CSS_SELECTOR, 'dd[data-field="sip_response_code"]').text == "200"
    rows = [(int(r.find_element(By.TAG_NAME, "td").text), r.get_attribute("data-lane"),
             r.find_element(By.CSS_SELECTOR, "td.hit").text) for r in _rows(browser, "#timeline tbody tr")]
    print("\n".join(f"{ms:6d} {lane:9} {text}" for ms, lane, text in rows))
    assert [ms for ms, _, _ in rows] == sorted(ms for ms, _, _ in rows)
    lanes = [h.text for h in _rows(browser, "#timeline thead th")][2:]
    assert lanes == ["status", "SIP", "callback", "TwiML", "media"], lanes
    texts = [(lane, text) for _, lane, text in rows]
    statuses = [text for lane, text in texts if lane == "status"]
    assert statuses == ["queued", "initiated", "180 ringing", "200 in-progress", "200 completed"], statuses
    sip = [text for lane, text in texts if lane == "SIP"]
    assert sip[0] == "INVITE sent" and sip[1].startswith("180 ") and sip[2] == "200 OK", sip
    assert sip[3].startswith("hangup requested") and sip[4].startswith("ended 200"), sip
    events = [text.split(":")[0] for lane, text in texts if lane == "callback"]
    assert events == CALLBACKS, events
    twiml = [text for lane, text in texts if lane == "TwiML"]  # the first document, fetched once answered
    fetch = rf"POST {re.escape(sink.url('/voice'))} -> 200 text/xml in \d+ ms"
    assert len(twiml) == 1 and re.fullmatch(fetch, twiml[0]), twiml
    media = [text for lane, text in texts if lane == "media"]
    assert media[0].startswith(f"{recording.sid} started") and media[-1].startswith(f"{recording.sid} completed")

    def at(lane: str, prefix: str) -> int:
        return next(i for i, (in_lane, text) in enumerate(texts) if in_lane == lane and text.startswith(prefix))

    # across lanes: the INVITE, ringing, the answer, then its callback and the TwiML fetch (concurrent: either
    # first), the hang-up and its callback; each callback after the status it reports
    answer, hangup = at("status", "200 in-progress"), at("SIP", "hangup requested")
    assert at("SIP", "INVITE sent") < at("status", "180 ringing") < answer
    assert at("status", "180 ringing") < at("callback", "ringing")  # the phone answers at once: maybe after it
    assert answer < at("callback", "answered") < hangup and answer < at("TwiML", "POST") < hangup
    assert hangup < at("status", "200 completed") < at("callback", "completed")

    audio = browser.find_element(By.CSS_SELECTOR, f'.recording[data-sid="{recording.sid}"] audio')
    assert audio.get_attribute("src").endswith(f"/Accounts/{ACCOUNT_SID}/Recordings/{recording.sid}.wav")
    _until(browser, lambda d: d.execute_script("return arguments[0].readyState", audio) >= 1, "audio metadata")
    duration = browser.execute_script("return arguments[0].duration", audio)
    assert duration == pytest.approx(float(recording.duration), abs=1.0), (duration, recording.duration)
    assert duration > 0.5
    played = browser.execute_async_script(
        "const [a, done] = arguments; a.play().then(() => setTimeout(() => done(a.currentTime), 600),"
        " (e) => done(String(e)));", audio)
    assert isinstance(played, float) and played > 0.2, played
