"""A worker's pjsua accounts: the local one every inbound call and plain outbound leg uses, and one per set of
digest credentials that a trunk's `<Dial>` legs authenticate with (pjsua keeps credentials per account).

pjsua has room for 8 accounts.  At most `MAX_CREDENTIAL_ACCOUNTS` credential accounts are kept; making one more
shuts the first that no live leg uses (a leg holds its account: `Leg.account_ref`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from switch.worker.leg import LegOwner, LocalAccount
from switch.worker.pjengine import pj
from switch.worker.pjmedia import local_account_config

MAX_CREDENTIAL_ACCOUNTS = 6  # of pjsua's 8 (the local account and a spare besides)
Credentials = tuple[str, str]  # username, password


class Accounts:
    """Makes and keeps the accounts of one engine (`owner`, which their callbacks reach) for the SIP address
    `uri`, with `proxy` as every request's outbound proxy when set (behind the SIP edge)."""

    def __init__(self, owner: LegOwner, uri: str, proxy: str | None, in_use: Callable[[], Collection[int]]) -> None:
        self._owner, self._uri, self._proxy = owner, uri, proxy
        self._in_use = in_use  # ids of the accounts live legs hold
        self.local: LocalAccount | None = None
        self._by_credentials: dict[Credentials, LocalAccount] = {}

    def start(self) -> None:
        self.local = self._make(None)

    def for_leg(self, auth: Credentials | None) -> LocalAccount:
        """The account a new outbound leg uses: the local one, or the one of its credentials."""
        assert self.local is not None, "accounts not started"
        if auth is None:
            return self.local
        account = self._by_credentials.get(auth)
        if account is None:
            if len(self._by_credentials) >= MAX_CREDENTIAL_ACCOUNTS:
                self._evict_one()
            account = self._by_credentials[auth] = self._make(auth)
        return account

    def _evict_one(self) -> None:
        busy = self._in_use()
        for key, old in list(self._by_credentials.items()):
            if id(old) not in busy:
                old.shutdown()
                del self._by_credentials[key]
                return

    def _make(self, auth: Credentials | None) -> LocalAccount:
        config = local_account_config(self._uri, None)
        if self._proxy:
            config.sipConfig.proxies.append(self._proxy)
        if auth is not None:
            config.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", auth[0], 0, auth[1]))
        account = LocalAccount(self._owner)
        account.create(config, auth is None)
        return account

    def shutdown(self) -> None:
        """Shut every account down (the engine stops)."""
        for account in [*self._by_credentials.values(), self.local]:
            if account is not None:
                account.shutdown()
        self._by_credentials.clear()
        self.local = None
