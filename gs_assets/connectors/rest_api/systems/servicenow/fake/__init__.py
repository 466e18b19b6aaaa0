"""A faithful local fake of a ServiceNow instance's Table API (https://<instance>.service-now.com),
for tests (and later the demo).

    inst = Instance(Clock(), name="acme")       # state + fault plan; time only from the clock
    user, password = inst.add_user_credentials()  # basic auth; OAuth: cid, secret = inst.add_oauth_client()
    inst.seed()                                 # or inst.put(table, sys_id, at=..., **values), inst.delete(...)
    app = create_app(inst)                      # FastAPI; serves only Host: acme.service-now.com
"""

from .app import create_app, parse_query
from .instance import FaultPlan, Instance, RateLimitRule, parse_sn_time, sn_time

__all__ = ["FaultPlan", "Instance", "RateLimitRule", "create_app", "parse_query", "parse_sn_time", "sn_time"]
