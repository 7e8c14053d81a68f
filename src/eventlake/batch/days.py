"""Logical dates: a job's unit of work is one UTC day, ``[day 00:00, next day 00:00)``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Days:
    """The UTC days ``first`` .. ``last``, both included."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the range ends ({self.last}) before it starts ({self.first})")

    @classmethod
    def one(cls, day: dt.date) -> Days:
        return cls(day, day)

    @property
    def start(self) -> dt.datetime:
        return start_of(self.first)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: midnight after ``last``."""
        return start_of(self.last) + dt.timedelta(days=1)

    def __iter__(self) -> Iterator[dt.date]:
        day = self.first
        while day <= self.last:
            yield day
            day += dt.timedelta(days=1)

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"


def start_of(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def yesterday(now: dt.datetime | None = None) -> dt.date:
    """The last complete UTC day: the default logical date of a daily job run by hand."""
    return ((now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=1)).date()
