"""A faithful local fake of HubSpot's CRM API (api.hubapi.com), for tests, the demo and benchmarks.

    portal = HubSpotPortal(Clock())            # state + fault plan; time only from the clock
    token = portal.add_private_app()           # or: client_id, secret, refresh = portal.add_oauth_app()
    portal.seed_demo()                         # or portal.create(...), bulk_update(...), archive(...)
    app = create_app(portal)                   # FastAPI; serves only Host: api.hubapi.com

Serve it in process (`httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="https://api.hubapi.com")`)
or on loopback (`harness.serve_on_loopback(app)`, Host header kept), or by hand:
`python -m gs_assets.connectors.rest_api.systems.hubspot.fake --port 8765 --seed demo`.
"""

from .app import SEARCH_CAP, create_app
from .portal import (HOST, LAST_MODIFIED, FaultPlan, HubSpotPortal, Owner, PropertyDef, RateLimits, Record, iso_ms,
                     to_ms)

__all__ = ["HOST", "LAST_MODIFIED", "SEARCH_CAP", "FaultPlan", "HubSpotPortal", "Owner", "PropertyDef", "RateLimits",
           "Record", "create_app", "iso_ms", "to_ms"]
