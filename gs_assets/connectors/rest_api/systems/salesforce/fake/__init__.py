"""A faithful local fake of Salesforce (OAuth token endpoint, REST query/queryAll, describe,
getUpdated/getDeleted, limits, Bulk API 2.0 query) with a clock and a fault plan.

    org = SalesforceOrg(clock=Clock(), environment="production", my_domain="acme")
    org.register_app("cid", "secret", public_key_pem=..., run_as_username=...)
    refresh = org.issue_refresh_token("cid")
    org.seed_demo()
    app = create_app(org)      # serve in process (httpx.ASGITransport) or with serve_on_loopback

Hosts are told apart by the Host header: login.salesforce.com (production) / test.salesforce.com
(sandbox) and <my_domain>.my.salesforce.com issue tokens; `instance_url` (the My Domain host, or
`instance_host`, e.g. na1.salesforce.com) serves /services/data. Where Salesforce's documentation
differs between versions the fake says so on the setting: Bulk API 2.0 query docs up to about
v246 list ORDER BY and LIMIT as unsupported, later ones only say they disable PK chunking; the fake
rejects them (INVALIDJOB) unless `SalesforceOrg.bulk_rejects_order_by_limit` is False. OFFSET,
GROUP BY, aggregates and TYPEOF are unsupported in every version.
"""

from .app import create_app
from .org import ConnectedApp, FaultPlan, FieldDef, PendingWrite, SalesforceOrg, id18, sf_datetime
from .soql import SoqlError

__all__ = ["create_app", "ConnectedApp", "FaultPlan", "FieldDef", "PendingWrite", "SalesforceOrg", "SoqlError",
           "id18", "sf_datetime"]
