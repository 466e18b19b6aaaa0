"""Run the Salesforce fake by hand:

    python -m gs_assets.connectors.rest_api.systems.salesforce.fake --port 8765 --seed demo

It serves every Salesforce host of one org on 127.0.0.1; send requests with the vendor's host name
in the Host header (curl -H 'Host: login.salesforce.com' ...). The demo app's client id is printed;
its secret and refresh token are the DEMO_* constants of this module (a fake's, not a real secret).
"""

from __future__ import annotations

import argparse
import sys
import time

from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback

from . import SalesforceOrg, create_app
from .org import RefreshGrant

DEMO_CLIENT_ID = "3MVG9fake.gsdp.demo.consumer.key"
DEMO_CLIENT_SECRET = "fake-demo-consumer-secret"
DEMO_REFRESH_TOKEN = "5Aep861fakeDemoRefreshToken"


def demo_org(environment: str = "production", my_domain: str = "gsdp-demo", seed: str = "demo") -> SalesforceOrg:
    org = SalesforceOrg(clock=Clock(ticking=True), environment=environment, my_domain=my_domain)
    org.register_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, run_as_username=org.user_by_username(None)["Username"])
    org.refresh_tokens[DEMO_REFRESH_TOKEN] = RefreshGrant(DEMO_CLIENT_ID, org.user_by_username(None)["Username"])
    if seed == "demo":
        org.seed_demo()
    return org


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gs_assets.connectors.rest_api.systems.salesforce.fake",
                                 description="Serve a fake Salesforce org on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--seed", choices=["demo", "empty"], default="demo")
    ap.add_argument("--environment", choices=["production", "sandbox"], default="production")
    ap.add_argument("--my-domain", default="gsdp-demo", help="My Domain name: <name>.my.salesforce.com")
    args = ap.parse_args(argv)
    org = demo_org(args.environment, args.my_domain, args.seed)
    server = serve_on_loopback(create_app(org), port=args.port or None)
    counts = {name: len(org.records(name)) for name in org.objects}
    print(f"Salesforce fake on {server.url}  (org {org.org_id}, {args.environment})")
    print(f"  token hosts: {', '.join(sorted(org.token_hosts()))}; API host (instance_url): {org.api_host}")
    print(f"  connected app client_id: {DEMO_CLIENT_ID} (secret and refresh token: DEMO_* in this module)")
    print(f"  records: {counts}")
    print("  Ctrl-C stops it.")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
