"""Faust tables (RocksDB-backed, with changelog topics) and fast access to them."""
