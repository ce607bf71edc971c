"""Kafka plumbing (layer 2): the Faust app class, transport, delivery, brokers."""
