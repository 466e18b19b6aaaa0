"""Bulk API: systems with no direct integration push CSV files over HTTP into jobs."""
