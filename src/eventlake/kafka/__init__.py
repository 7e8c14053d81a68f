"""Kafka clients: topic provisioning (admin); producers, consumers and Avro serde build on it."""
