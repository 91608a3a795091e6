"""The per-replica cache of partners' tokens: bounded, aged, and kept honest by change events."""

from __future__ import annotations

from services.tokens.cpo_cache import TokenCache
from services.tokens.cpo_policy import Ambiguous, Holder
from shared.contracts.partners import Party
from shared.ocpi.v2_1_1.tokens import TokenType, WhitelistType
from tests.unit.test_tokens_cpo_policy import EMSP, token

KEY = ("CARD1", TokenType.RFID)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(clock: Clock, size: int = 10) -> TokenCache:
    return TokenCache(ttl=30.0, miss_ttl=1.0, size=size, clock=clock)


def holder(version: int = 1, valid: bool = True, party: Party = EMSP) -> Holder:
    return Holder(party=party, token=token(WhitelistType.ALWAYS, valid), via="conn", version=version)


def test_a_found_token_answers_until_its_ttl_and_a_miss_only_briefly() -> None:
    """Holders are kept `ttl` seconds, unknown uids only `miss_ttl`."""
    clock = Clock()
    tokens = cache(clock)
    tokens.put(KEY, holder(), tokens.begin())
    tokens.put(("NOBODY", TokenType.RFID), None, tokens.begin())
    assert tokens.get(KEY) is not None and tokens.get(("NOBODY", TokenType.RFID)) is not None
    clock.now += 1.5
    assert tokens.get(("NOBODY", TokenType.RFID)) is None
    assert tokens.get(KEY) is not None
    clock.now += 29.0
    assert tokens.get(KEY) is None


def test_the_size_is_bounded_least_recently_used_first() -> None:
    """Past `size` entries the least recently used goes."""
    clock = Clock()
    tokens = cache(clock, size=2)
    for uid in ("A", "B"):
        tokens.put((uid, TokenType.RFID), holder(), tokens.begin())
    assert tokens.get(("A", TokenType.RFID)) is not None  # A used: B is now the oldest
    tokens.put(("C", TokenType.RFID), holder(), tokens.begin())
    assert tokens.get(("B", TokenType.RFID)) is None
    assert tokens.get(("A", TokenType.RFID)) is not None and len(tokens) == 2


def test_a_change_of_the_cached_holder_replaces_it_and_an_older_one_does_not() -> None:
    """The newer version of the same party's token replaces the entry; a redelivered older event does not."""
    clock = Clock()
    tokens = cache(clock)
    tokens.put(KEY, holder(version=2), tokens.begin())
    blocked = holder(version=3, valid=False)
    tokens.changed(blocked.party, blocked.token, blocked.via, blocked.version)
    cached = tokens.get(KEY)
    assert cached is not None and cached.found == blocked
    old = holder(version=2)
    tokens.changed(old.party, old.token, old.via, old.version)
    again = tokens.get(KEY)
    assert again is not None and again.found == blocked


def test_a_change_drops_misses_ambiguities_and_other_parties_entries() -> None:
    """A pushed token is found at once although its miss was cached; other entries are read again."""
    clock = Clock()
    tokens = cache(clock)
    new = holder()
    for found in (None, Ambiguous((EMSP,)), holder(party=Party("DE", "OTH"))):
        tokens.put(KEY, found, tokens.begin())
        tokens.changed(new.party, new.token, new.via, new.version)
        assert tokens.get(KEY) is None


def test_a_lookup_that_began_before_a_change_is_not_cached() -> None:
    """A database read that raced with a change may be stale: it answers once but is not kept."""
    clock = Clock()
    tokens = cache(clock)
    started = tokens.begin()
    changed = holder(version=2, valid=False)
    tokens.changed(changed.party, changed.token, changed.via, changed.version)
    tokens.put(KEY, holder(version=1), started)
    assert tokens.get(KEY) is None
    tokens.put(KEY, holder(version=2, valid=False), tokens.begin())
    assert tokens.get(KEY) is not None


def test_clear_forgets_everything() -> None:
    """After a broker reconnect (events may have been missed) the cache starts empty."""
    clock = Clock()
    tokens = cache(clock)
    tokens.put(KEY, holder(), tokens.begin())
    in_flight = tokens.begin()
    tokens.clear()
    assert tokens.get(KEY) is None and len(tokens) == 0
    tokens.put(KEY, holder(), in_flight)
    assert tokens.get(KEY) is None
