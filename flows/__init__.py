"""Prefect flows that wire components together, and the `rnnflow` CLI."""
