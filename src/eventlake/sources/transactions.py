"""Payment transactions: accounts paying merchants, log-normal amounts, declines, fraud bursts.

Each merchant has a category and a country; amounts are log-normal per category. About 3 % of
authorisations are declined. Rarely an account starts a velocity burst (10-30 card-not-present
payments in quick succession, mostly electronics, many declined), labelled ``velocity_burst`` in
the ``eventlake-anomaly`` header.
"""

from __future__ import annotations

from eventlake.sources.base import Event, Generator, event_id

# category -> (log-normal mu, sigma) of the amount
CATEGORIES = {
    "grocery": (3.4, 0.6),
    "restaurants": (3.3, 0.5),
    "fuel": (3.9, 0.3),
    "electronics": (5.3, 0.9),
    "travel": (6.0, 0.8),
    "entertainment": (3.0, 0.7),
    "health": (3.6, 0.8),
    "utilities": (4.4, 0.4),
}
COUNTRY_CURRENCY = {"US": "USD", "DE": "EUR", "NL": "EUR", "FR": "EUR", "GB": "GBP", "JP": "JPY", "IN": "INR"}
P_DECLINE, P_PENDING, P_BURST = 0.03, 0.01, 0.0015


class TransactionsGenerator(Generator):
    name = "transactions"
    key_field = "account_id"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        countries = list(COUNTRY_CURRENCY)
        self.merchants = [
            (f"m{i:05d}", self.rng.choice(list(CATEGORIES)), self.rng.choice(countries))
            for i in range(self.settings.sources.merchants)
        ]
        # Velocity bursts pay electronics merchants (any merchant if there is none).
        self.burst_merchants = [m for m in self.merchants if m[1] == "electronics"] or self.merchants
        self.accounts = [f"acct-{i:06d}" for i in range(self.settings.sources.accounts)]
        self.burst_account: str | None = None
        self.burst_left = 0

    def next_event(self) -> Event:
        now = self.event_time()
        anomaly = None
        if self.burst_left == 0 and self.rng.random() < P_BURST:
            self.burst_account, self.burst_left = self.rng.choice(self.accounts), self.rng.randrange(10, 31)
        if self.burst_left > 0 and self.burst_account is not None:
            self.burst_left -= 1
            account, anomaly = self.burst_account, "velocity_burst"
            merchant, category, country = self.rng.choice(self.burst_merchants)
            card_present, p_decline = False, 0.35
        else:
            account = self.accounts[self.rng.randrange(len(self.accounts))]
            merchant, category, country = self.merchants[self.rng.randrange(len(self.merchants))]
            card_present, p_decline = self.rng.random() < 0.6, P_DECLINE
        mu, sigma = CATEGORIES[category]
        r = self.rng.random()
        status = "DECLINED" if r < p_decline else "PENDING" if r < p_decline + P_PENDING else "APPROVED"
        record = {
            "event_id": event_id(self.rng),
            "event_time": now,
            "transaction_id": f"tx-{self.rng.getrandbits(48):012x}",
            "account_id": account,
            "merchant_id": merchant,
            "merchant_category": category,
            "amount": round(min(self.rng.lognormvariate(mu, sigma), 50_000.0), 2),
            "currency": COUNTRY_CURRENCY[country],
            "status": status,
            "payment_method": "CARD" if card_present else self.rng.choice(("CARD", "WALLET", "BANK_TRANSFER")),
            "country": country,
            "card_present": card_present,
        }
        return Event(key=account, value=record, anomaly=anomaly)
