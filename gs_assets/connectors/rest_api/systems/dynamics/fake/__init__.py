"""A faithful local fake of Microsoft Dataverse (Dynamics 365) Web API v9.2 and its token endpoint.

    org = DataverseOrg(Clock())                # one org (contoso.crm.dynamics.com) in one tenant
    client_id, client_secret = org.add_app()   # an app registration with an application user
    org.seed_demo()                            # or org.create(...), update(...), delete(...)
    app = create_app(org)                      # FastAPI; serves login.microsoftonline.com and the org host

Serve it in process (gs_assets.connectors.rest_api.client.asgi_transport) or on loopback
(`harness.serve_on_loopback(app)`) with a host map for both hosts, or by hand:
`python -m gs_assets.connectors.rest_api.systems.dynamics.fake --port 8766`.
"""

from .app import LOOKUP_ANNOTATION, create_app
from .org import API_PATH, LOGIN_HOST, TOKEN_LIFETIME_S, DataverseOrg, FaultPlan, odata_time

__all__ = ["API_PATH", "LOGIN_HOST", "LOOKUP_ANNOTATION", "TOKEN_LIFETIME_S", "DataverseOrg", "FaultPlan",
           "create_app", "odata_time"]
