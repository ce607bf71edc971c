"""Prometheus metrics, the Grafana dashboard and alert rules of Vigil."""
