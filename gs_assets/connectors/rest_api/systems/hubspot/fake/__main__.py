"""Run the fake HubSpot by hand: `python -m gs_assets.connectors.rest_api.systems.hubspot.fake --port 8765 --seed demo`.

The clock ticks with real time from now; the private-app token and the OAuth app's credentials are
printed (they are the fake's own, valid nowhere else). Requests must carry `Host: api.hubapi.com`.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from gs_assets.connectors.rest_api.fakes.harness import Clock

from .app import create_app
from .portal import HOST, HubSpotPortal, RateLimits


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Serve the fake HubSpot API on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--seed", choices=["demo", "empty"], default="demo")
    ap.add_argument("--token", default=None, help="private-app token to accept (default: a new pat-... token)")
    ap.add_argument("--no-rate-limits", action="store_true", help="do not enforce the burst/daily/search budgets")
    args = ap.parse_args(argv)

    import uvicorn

    portal = HubSpotPortal(Clock(start=datetime.now(timezone.utc), ticking=True),
                           rate_limits=RateLimits(enforce=not args.no_rate_limits))
    counts = portal.seed_demo() if args.seed == "demo" else {}
    token = portal.add_private_app(args.token)
    client_id, client_secret, refresh = portal.add_oauth_app()
    base = f"http://127.0.0.1:{args.port}"
    print(f"fake HubSpot on {base} (Host: {HOST}); seeded {counts or 'nothing'}")
    print(f"private-app token: {token}")
    print(f"OAuth app: client_id={client_id} client_secret={client_secret} refresh_token={refresh}")
    print(f"try: curl -H 'Host: {HOST}' -H 'Authorization: Bearer {token}' '{base}/crm/v3/objects/companies?limit=2'")
    uvicorn.run(create_app(portal), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
