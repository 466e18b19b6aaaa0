"""A faithful local fake of Zendesk Support's incremental export API (https://<subdomain>.zendesk.com).

    account = ZendeskAccount(Clock(), subdomain="acme")
    email, token = account.add_api_token()        # or account.add_oauth_token()
    account.put("tickets", 1, subject="Help", status="open", requester_id=7001)
    app = create_app(account)                     # FastAPI; serves only Host: acme.zendesk.com
"""

from .account import RESOURCES, ZendeskAccount, epoch_s, iso_s
from .app import create_app, decode_cursor, encode_cursor

__all__ = ["RESOURCES", "ZendeskAccount", "create_app", "decode_cursor", "encode_cursor", "epoch_s", "iso_s"]
