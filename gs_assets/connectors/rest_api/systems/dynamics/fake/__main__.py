"""Run the fake Dataverse by hand: `python -m gs_assets.connectors.rest_api.systems.dynamics.fake --port 8766`.

The clock ticks with real time; the app registration's credentials and the tenant id are printed
(the fake's own, valid nowhere else). Requests carry Host: login.microsoftonline.com or <org>.crm.dynamics.com.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from gs_assets.connectors.rest_api.fakes.harness import Clock

from .app import create_app
from .org import LOGIN_HOST, DataverseOrg


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Serve the fake Dataverse Web API on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--org", default="contoso")
    ap.add_argument("--seed", choices=["demo", "empty"], default="demo")
    args = ap.parse_args(argv)

    import uvicorn

    org = DataverseOrg(Clock(start=datetime.now(timezone.utc), ticking=True), org=args.org)
    counts = org.seed_demo() if args.seed == "demo" else {}
    client_id, client_secret = org.add_app()
    base = f"http://127.0.0.1:{args.port}"
    print(f"fake Dataverse on {base} (Host: {org.host} and {LOGIN_HOST}); seeded {counts or 'nothing'}")
    print(f"tenant_id={org.tenant_id} client_id={client_id} client_secret={client_secret}")
    print(f"GSDP_REST_HOST_MAP={org.host}={base},{LOGIN_HOST}={base}")
    uvicorn.run(create_app(org), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
