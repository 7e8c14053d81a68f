"""User activity: a population of users in sessions, walking a Markov chain over pages.

Users have a home country (weighted mix) and a preferred device. Countries are active according
to a diurnal curve of their local hour, so the country mix follows the simulated clock. A session
starts with SESSION_START, walks PAGE_VIEW/SEARCH/CLICK/ADD_TO_CART/PURCHASE, and ends with LOGOUT
or silently after 30 minutes idle (a timeout emits nothing, as on a real site).
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from itertools import accumulate

from eventlake.sources.base import Event, Generator, diurnal, event_id

COUNTRIES = {
    "US": (0.30, -5),
    "DE": (0.12, 1),
    "GB": (0.10, 0),
    "FR": (0.08, 1),
    "NL": (0.05, 1),
    "IN": (0.12, 5.5),
    "BR": (0.08, -3),
    "JP": (0.07, 9),
    "AU": (0.04, 10),
    "ZA": (0.04, 2),
}
DEVICES = (("MOBILE", 0.58), ("DESKTOP", 0.35), ("TABLET", 0.07))
CATEGORIES = ("books", "electronics", "garden", "toys", "fashion", "sports")
REFERRERS: tuple[tuple[str | None, float], ...] = (
    ("https://www.google.com/", 0.45),
    (None, 0.35),
    ("https://news.example.com/", 0.1),
    ("https://mail.example.com/newsletter", 0.1),
)
SESSION_TIMEOUT_MS = 30 * 60 * 1000
FIXED_PAGES = {"SEARCH": "/search", "ADD_TO_CART": "/cart", "PURCHASE": "/checkout", "LOGOUT": "/account/logout"}

# Markov chain: state -> (next state, weight)
TRANSITIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "SESSION_START": (("PAGE_VIEW", 0.7), ("SEARCH", 0.3)),
    "PAGE_VIEW": (("PAGE_VIEW", 0.35), ("CLICK", 0.25), ("SEARCH", 0.12), ("ADD_TO_CART", 0.12), ("LOGOUT", 0.16)),
    "CLICK": (("PAGE_VIEW", 0.7), ("ADD_TO_CART", 0.15), ("LOGOUT", 0.15)),
    "SEARCH": (("PAGE_VIEW", 0.75), ("SEARCH", 0.15), ("LOGOUT", 0.1)),
    "ADD_TO_CART": (("PURCHASE", 0.35), ("PAGE_VIEW", 0.5), ("LOGOUT", 0.15)),
    "PURCHASE": (("PAGE_VIEW", 0.4), ("LOGOUT", 0.6)),
}


class _Choice:
    """``rng.choices(options, weights)[0]`` with the cumulative weights computed once: the same
    draw (one ``rng.random()``) and the same result, without rebuilding two lists per call."""

    __slots__ = ("cum", "hi", "options", "total")

    def __init__(self, weighted: tuple[tuple[str | None, float], ...]) -> None:
        self.options = [o for o, _ in weighted]
        self.cum = list(accumulate(w for _, w in weighted))
        self.total, self.hi = self.cum[-1] + 0.0, len(self.cum) - 1

    def pick(self, rng: random.Random) -> str | None:
        return self.options[bisect(self.cum, rng.random() * self.total, 0, self.hi)]


NEXT_STATE = {state: _Choice(options) for state, options in TRANSITIONS.items()}
DEVICE_CHOICE = _Choice(DEVICES)
REFERRER_CHOICE = _Choice(REFERRERS)


class _Session:
    __slots__ = ("country", "device", "id", "last_ms", "page", "state", "user")

    def __init__(self, user: str, sid: str, country: str, device: str, now: int) -> None:
        self.user, self.id, self.country, self.device = user, sid, country, device
        self.state, self.page, self.last_ms = "SESSION_START", "/", now


class UserActivityGenerator(Generator):
    name = "user_activity"
    key_field = "user_id"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        codes = list(COUNTRIES)
        weights = [COUNTRIES[c][0] for c in codes]
        self.users = [
            (f"u{i:06d}", self.rng.choices(codes, weights)[0], self._pick(DEVICE_CHOICE))
            for i in range(self.settings.sources.users)
        ]
        self.sessions: list[_Session] = []

    def _pick(self, choice: _Choice) -> str:
        picked = choice.pick(self.rng)
        assert picked is not None
        return picked

    def _active_weight(self, country: str, now_ms: int) -> float:
        utc_hour = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).hour
        return diurnal((utc_hour + COUNTRIES[country][1]) % 24)

    def _new_session(self, now: int) -> _Session:
        # Rejection-sample a user whose local time makes them likely to be online.
        while True:
            user, country, device = self.users[self.rng.randrange(len(self.users))]
            if self.rng.random() < self._active_weight(country, now):
                break
        s = _Session(user, event_id(self.rng), country, device, now)
        self.sessions.append(s)
        return s

    def _page_for(self, state: str) -> str:
        fixed = FIXED_PAGES.get(state)
        if fixed is not None:
            return fixed
        r = self.rng.random()
        if r < 0.15:
            return "/"
        if r < 0.45:
            return f"/category/{self.rng.choice(CATEGORIES)}"
        return f"/product/{self.rng.randrange(1, 20_000)}"

    def next_event(self) -> Event:
        now = self.event_time()
        if self.clock.i % 100 == 0:  # expire idle sessions now and then, not on every event
            self.sessions = [s for s in self.sessions if now - s.last_ms < SESSION_TIMEOUT_MS]
        # Keep a few hundred concurrent sessions; start new ones when below target.
        if len(self.sessions) < 50 or self.rng.random() < 0.08:
            session = self._new_session(now)
            state, referrer, duration = "SESSION_START", self._pick_referrer(), None
        else:
            session = self.sessions[self.rng.randrange(len(self.sessions))]
            state = self._pick(NEXT_STATE[session.state])
            referrer = f"https://shop.example.com{session.page}"
            duration = max(0, min(int(self.rng.lognormvariate(9.5, 1.0)), max(0, now - session.last_ms) or 10**6))
        page = "/" if state == "SESSION_START" else self._page_for(state)
        properties: dict[str, str] = {}
        if state == "SEARCH":
            properties["query"] = self.rng.choice(CATEGORIES) + " " + self.rng.choice(("sale", "new", "best", "gift"))
        if page.startswith("/product/"):
            properties["product_id"] = page.rsplit("/", 1)[1]
        session.state, session.page, session.last_ms = state, page, max(session.last_ms, now)
        if state == "LOGOUT":
            self.sessions.remove(session)
        value = {
            "event_id": event_id(self.rng),
            "event_time": now,
            "user_id": session.user,
            "session_id": session.id,
            "event_type": state,
            "page": page,
            "device": session.device,
            "country": session.country,
            "referrer": referrer,
            "duration_ms": duration,
            "properties": properties,
        }
        return Event(key=session.user, value=value)

    def _pick_referrer(self) -> str | None:
        return REFERRER_CHOICE.pick(self.rng)
