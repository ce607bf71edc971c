"""Faust agents (thin: they wire streams to the pure code in models/) and their plumbing."""
