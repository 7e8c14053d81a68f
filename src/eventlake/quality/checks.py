"""Rules as Spark column expressions, evaluated in the silver micro-batch's single pass.

We compile rules to Spark-native expressions rather than run a rules library (pandera, Great
Expectations, Soda) per batch: those validate a DataFrame in their own passes and report
afterwards, while here every rule's failure flag, the quarantine reason and the per-rule counts
come out of the one aggregation silver already does. docs/quality.md has the comparison.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from eventlake.quality.rules import AllowedValues, NotNull, RangeRule, Regex, RowRule


def failed(rule: RowRule, record: str = "_rec") -> Column:
    """True where a decoded record fails ``rule`` (never null)."""
    value = F.col(f"{record}.{rule.field}")
    if isinstance(rule, NotNull):
        return value.isNull()
    if isinstance(rule, RangeRule):
        bad = F.lit(False)
        if rule.min is not None:
            bad = bad | (value < F.lit(rule.min))
        if rule.max is not None:
            bad = bad | (value > F.lit(rule.max))
        return value.isNotNull() & bad
    if isinstance(rule, AllowedValues):
        return value.isNotNull() & ~value.isin(list(rule.values))
    if isinstance(rule, Regex):
        return value.isNotNull() & ~value.cast("string").rlike(rule.pattern)
    raise TypeError(f"not a row rule: {rule!r}")
