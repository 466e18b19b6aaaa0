"""The demo's API sources: the faithful Salesforce and HubSpot fakes on 127.0.0.1, seeded with data
that overlaps the CSV demo (same company account ids, same users' emails), their clocks following
real time. `start()` serves both and returns the environment the `sfdc` and `hubspot` connections
need (GSDP_REST_HOST_MAP and the fakes' own demo credentials); the caller puts it in its own
process's environment only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

# The fake HubSpot portal's private-app token for the demo (the fake's own, valid nowhere else).
DEMO_HUBSPOT_TOKEN = "pat-na1-fake0000-demo-gsdp0000demo0000"


@dataclass
class ApiFakes:
    servers: dict = field(default_factory=dict)   # connection -> LoopbackServer
    env: dict = field(default_factory=dict)       # env vars the connections read
    seeded: dict = field(default_factory=dict)    # connection -> {object: records}
    wrong: dict = field(default_factory=dict)     # connection -> what is wrong on purpose
    hosts: dict = field(default_factory=dict)     # connection -> vendor hosts it serves

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


def start() -> ApiFakes:
    """Serve the Salesforce fake (connection sfdc) and the HubSpot fake (connection hubspot)."""
    from gs_assets.connectors.rest_api.fakes.harness import Clock, serve_on_loopback
    from gs_assets.connectors.rest_api.systems.hubspot.fake import app as hs_app
    from gs_assets.connectors.rest_api.systems.hubspot.fake.portal import HOST as HS_HOST
    from gs_assets.connectors.rest_api.systems.hubspot.fake.portal import HubSpotPortal
    from gs_assets.connectors.rest_api.systems.salesforce.fake import SalesforceOrg, create_app
    from gs_assets.connectors.rest_api.systems.salesforce.fake.__main__ import (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
                                                                                 DEMO_REFRESH_TOKEN)
    from gs_assets.connectors.rest_api.systems.salesforce.fake.org import RefreshGrant

    fakes = ApiFakes()
    try:
        # Seeded an hour ago (a sync reads only what is older than the visibility lag), then at now.
        org = SalesforceOrg(clock=Clock(start=datetime.now(timezone.utc) - timedelta(hours=1), ticking=True),
                            environment="production", my_domain="gsdp-demo")
        admin = org.user_by_username(None)["Username"]
        org.register_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, run_as_username=admin)
        org.refresh_tokens[DEMO_REFRESH_TOKEN] = RefreshGrant(DEMO_CLIENT_ID, admin)
        fakes.seeded["sfdc"] = org.seed_demo()
        # Wrong on purpose, like the CSV sample's rows, so the demo shows API rejects with their reasons.
        org.insert("Contact", AccountId=org.records("Account")[0]["Id"], FirstName="Pat", LastName="Typo",
                   Email="pat.typo(at)example.com", Title="Champion")
        fakes.wrong["sfdc"] = "a contact with an invalid email"
        org.clock.advance(hours=1)
        fakes.servers["sfdc"] = serve_on_loopback(create_app(org))
        fakes.hosts["sfdc"] = sorted(org.token_hosts() | {org.api_host})

        portal = HubSpotPortal(Clock(start=datetime.now(timezone.utc), ticking=True))
        fakes.seeded["hubspot"] = portal.seed_demo()
        portal.create("companies", {"name": "Only In HubSpot LLC", "domain": "onlyinhubspot.com",
                                    "industry": "Software"},
                      at_ms=int((datetime.now(timezone.utc) - timedelta(hours=1)).timestamp() * 1000))
        fakes.wrong["hubspot"] = "a company without gsdp_account_id (no CSV account id to key it)"
        portal.add_private_app(DEMO_HUBSPOT_TOKEN)
        fakes.servers["hubspot"] = serve_on_loopback(hs_app.create_app(portal))
        fakes.hosts["hubspot"] = [HS_HOST]
    except BaseException:
        fakes.stop()
        raise
    fakes.env = {
        "GSDP_REST_HOST_MAP": ",".join(f"{h}={fakes.servers[c].url}" for c, hosts in fakes.hosts.items() for h in hosts),
        "GSDP_SFDC_CLIENT_ID": DEMO_CLIENT_ID,
        "GSDP_SFDC_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "GSDP_SFDC_REFRESH_TOKEN": DEMO_REFRESH_TOKEN,
        "GSDP_HUBSPOT_ACCESS_TOKEN": DEMO_HUBSPOT_TOKEN,
    }
    return fakes


def describe(fakes: ApiFakes) -> list[str]:
    """One line per fake: where it serves, which hosts, what it was seeded with (no secret)."""
    return [f"fake {'Salesforce' if c == 'sfdc' else 'HubSpot'} (connection {c}) on {s.url} for "
            f"{', '.join(fakes.hosts[c])}; seeded {', '.join(f'{k} {v}' for k, v in fakes.seeded[c].items())}"
            + (f", and {fakes.wrong[c]} on purpose" if c in fakes.wrong else "")
            for c, s in fakes.servers.items()]
