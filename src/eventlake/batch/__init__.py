"""The batch side of the platform: Spark jobs Airflow schedules, each a function of a logical date.

- :mod:`~eventlake.batch.rollups`: hourly and daily gold rollups (PostgreSQL + Delta)
- :mod:`~eventlake.batch.maintenance`: Delta OPTIMIZE/VACUUM, pruning of PostgreSQL bookkeeping
- :mod:`~eventlake.batch.backfill`: silver and gold rebuilt from bronze for a date range
- :mod:`~eventlake.batch.report`: the daily data-quality report (HTML, stored, sent)

Every job is idempotent per logical date: running it twice for a day leaves what one run left.
``eventlake batch <job>`` runs each one without Airflow.
"""
