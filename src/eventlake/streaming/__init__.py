"""Spark Structured Streaming: bronze (raw Kafka records) -> silver (decoded, valid, unique) -> gold.

``run_jobs(settings, jobs=("bronze", "silver", "gold"), until_idle=True)`` processes everything
available and returns; without ``until_idle`` the queries run until stopped.
"""
