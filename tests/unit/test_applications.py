"""Applications and the numbers routed to them, on a real store: routing, detaching on delete, the migration
of an older `phone_numbers` table, and the account profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.core.accounts import Accounts
from switch.core.applications import ApplicationRegistry
from switch.core.config import Number
from switch.core.errors import InvalidArgument
from switch.core.numbers import NumberRegistry
from switch.core.paging import Cursor, PageKey
from switch.core.store import Store

ACCOUNT = "AC" + "a" * 32
OLD_SCHEMA = """
CREATE TABLE phone_numbers (
    sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, phone_number TEXT NOT NULL, match_key TEXT NOT NULL,
    friendly_name TEXT, voice_url TEXT, voice_method TEXT NOT NULL, voice_fallback_url TEXT,
    voice_fallback_method TEXT NOT NULL, status_callback TEXT, status_callback_method TEXT NOT NULL,
    date_created TEXT NOT NULL, date_updated TEXT NOT NULL, from_config INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account_sid, match_key)
);
INSERT INTO phone_numbers VALUES ('PN0', 'ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '+15550001', '15550001', 'old',
    'http://old/voice', 'GET', NULL, 'POST', NULL, 'POST', '2025-01-01T00:00:00+00:00',
    '2025-01-01T00:00:00+00:00', 0);
"""


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite")


def test_a_number_with_an_application_routes_to_it_until_the_application_goes(store: Store) -> None:
    apps = ApplicationRegistry(store, ACCOUNT)
    numbers = NumberRegistry(store, ACCOUNT, [], apps)
    app = apps.create("ivr", "http://app/voice", "GET", "http://app/fallback", "POST", "http://app/status", "GET")
    number = numbers.create("+15550100", voice_url="http://num/voice", status_callback="http://num/status",
                            voice_application_sid=app.sid)
    assert numbers.lookup("15550100") == Number("+15550100", "http://app/voice", "GET", "http://app/fallback",
                                                "POST", "http://app/status", "GET", number.sid)
    apps.update(app.sid, {"voice_url": "http://app/v2", "status_callback": None})
    routed = numbers.lookup("+15550100")
    assert routed is not None and (routed.voice_url, routed.status_callback) == ("http://app/v2", None)

    assert apps.delete(app.sid) is True and apps.delete(app.sid) is False
    detached = numbers.get(number.sid)
    assert detached is not None and detached.voice_application_sid is None
    assert numbers.lookup("+15550100") == Number("+15550100", "http://num/voice", "POST", None, "POST",
                                                "http://num/status", "POST", number.sid)
    # Both survive a restart (a new registry on the same store).
    again = NumberRegistry(store, ACCOUNT, [], ApplicationRegistry(store, ACCOUNT))
    assert again.get(number.sid) == detached


def test_applications_list_by_name_and_cursor(store: Store) -> None:
    apps = ApplicationRegistry(store, ACCOUNT)
    made = [apps.create(name) for name in ("a", "b", "a", "a")]
    assert [a.sid for a in apps.list_applications()] == [a.sid for a in made]
    named = apps.list_applications("a")
    assert [a.sid for a in named] == [made[0].sid, made[2].sid, made[3].sid]
    after_first = apps.list_applications("a", cursor=Cursor(PageKey(named[0].date_created, named[0].sid)))
    assert [a.sid for a in after_first] == [made[2].sid, made[3].sid]
    with pytest.raises(ValueError):
        apps.update(made[0].sid, {"voice_method": None})
    assert apps.update("AP" + "0" * 32, {"friendly_name": "x"}) is None


def test_an_older_numbers_table_gains_the_new_columns(store: Store) -> None:
    store.executescript(OLD_SCHEMA)
    numbers = NumberRegistry(store, ACCOUNT, [])
    old = numbers.get("PN0")
    assert old is not None and (old.voice_application_sid, old.number_type, old.voice_url) == (
        None, "local", "http://old/voice")
    made = numbers.create("+15550002", number_type="toll-free")
    assert [n.sid for n in numbers.list_numbers(number_type="toll-free")] == [made.sid]
    assert [n.sid for n in numbers.list_numbers(number_type="local")] == ["PN0"]


def test_the_config_takes_its_numbers_back_from_an_application(store: Store) -> None:
    apps = ApplicationRegistry(store, ACCOUNT)
    numbers = NumberRegistry(store, ACCOUNT, [Number("+15550300", "http://config/voice")], apps)
    app = apps.create(voice_url="http://app/voice")

    def voice_url(registry: NumberRegistry) -> str | None:
        routed = registry.lookup("+15550300")
        assert routed is not None
        return routed.voice_url

    found = numbers.find("+15550300")
    assert found is not None
    numbers.update(found.sid, {"voice_application_sid": app.sid})
    assert voice_url(numbers) == "http://app/voice"
    restarted = NumberRegistry(store, ACCOUNT, [Number("+15550300", "http://config/voice")], apps)
    assert voice_url(restarted) == "http://config/voice"


def test_the_account_can_be_renamed_but_stays_active(store: Store) -> None:
    store.ensure_account(ACCOUNT, "token")
    accounts = Accounts(store, ACCOUNT)
    first = accounts.get()
    assert (first.sid, first.auth_token, first.friendly_name, first.status) == (ACCOUNT, "token", "softswitch",
                                                                                 "active")
    renamed = accounts.update(friendly_name="lab")
    assert (renamed.friendly_name, renamed.status) == ("lab", "active")
    assert renamed.date_updated >= first.date_updated and renamed.date_created == first.date_created
    for status in ("suspended", "closed", "gone"):
        with pytest.raises(InvalidArgument):
            accounts.update(status=status)
    with pytest.raises(InvalidArgument):
        accounts.update(friendly_name="x" * 65)
    assert Accounts(store, ACCOUNT).get().friendly_name == "lab"
