"""Rules as Spark column expressions, evaluated in the silver micro-batch's single pass.

We compile rules to Spark-native expressions rather than run a rules library (pandera, Great
Expectations, Soda) per batch: those validate a DataFrame in their own passes and report
afterwards, while here every rule's failure flag, the quarantine reason and the per-rule counts
come out of the one aggregation silver already does. docs/quality.md has the comparison.
"""

from __future__ import annotations

from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import IllegalArgumentException
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from eventlake.errors import ConfigError
from eventlake.quality.rules import AllowedValues, NotNull, Quality, RangeRule, Regex, RowRule


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


def require_java_regexes(spark: SparkSession, quality: Quality, rules_file: Path) -> None:
    """Every ``regex`` rule compiles as a Java regular expression, or :class:`ConfigError` now.

    The rules file is validated with Python's ``re`` when it loads (the serving path runs the rules
    in Python), but Spark runs them with ``java.util.regex``: a pattern only Python accepts, such as
    ``(?P<name>...)``, would fail every micro-batch. So a pipeline checks them with the JVM that
    runs them before it starts a query."""
    pattern = spark.sparkContext._jvm.java.util.regex.Pattern  # type: ignore[union-attr]
    for source, rules in quality.by_source.items():
        for rule in rules.of_type("regex"):
            try:
                pattern.compile(rule.pattern)
            except (IllegalArgumentException, Py4JJavaError) as err:  # PatternSyntaxException, as pyspark wraps it
                reason = str(err).strip().splitlines()[0]
                raise ConfigError(
                    f"{rules_file}: rule {rule.rule_name} of {source}: pattern {rule.pattern!r} is not a Java"
                    f" regular expression ({reason}); Spark runs it",
                    "use syntax both Python and Java accept (e.g. (?<name>...) for a named group)",
                ) from err
