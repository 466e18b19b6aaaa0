"""Fakes of SQL systems that cannot run on this machine (BigQuery), served with the REST fakes'
harness (gs_assets/connectors/rest_api/fakes/harness.py)."""
