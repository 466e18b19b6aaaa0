"""Faithful local fakes of the vendor APIs the rest_api kind reads (tests, demo, benchmarks)."""
