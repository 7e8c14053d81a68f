"""The serving path: raw Kafka topics to exact PostgreSQL gold rows in well under a second.

See :mod:`eventlake.serving.engine`. It needs neither Spark nor the lake: it shares with the lake
path the gold specs, the rules and the event-time policy, so both keep the same events.
"""
