"""Paginators: how one request spec becomes a sequence of pages.

Each yields `(records, response_json, request_summary, is_last)`; the summary names the request without
secrets (method, path, the page token) for the load ledger. The HubSpot-style `search` paginator
(sorted by cursor, a total result cap) lives in sync.py because it needs the cursor rule.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional
from urllib.parse import urlsplit

from gs_assets.connectors.rest_api.client import RestClient
from gs_assets.connectors.rest_api.spec import PaginatorSpec, RequestSpec, dig, render

PageTuple = tuple[list[dict], Any, str, bool]


def summary(method: str, url_or_path: str, token: Any = None, name: str = "") -> str:
    path = urlsplit(url_or_path).path or url_or_path
    return f"{method} {path}" + (f" {name}={token}" if token not in (None, "") else "")


def paginate(client: RestClient, req: RequestSpec, values: Mapping[str, Any], pager: PaginatorSpec,
             selector: str, *, body: Any = None) -> Iterator[PageTuple]:
    vals = {**client.variables, **values}
    path = render(req.path, vals)
    t = pager.type

    def send(token: Any = None, url: Optional[str] = None):
        params: dict[str, Any] = {}
        b = render(req.body, vals) if body is None and req.body is not None else body
        if pager.page_size_param and pager.page_size:
            params[pager.page_size_param] = pager.page_size
        if token is not None and pager.param:
            if pager.in_body:
                b = {**(b or {}), pager.param: token}
            else:
                params[pager.param] = token
        if url is not None:
            return client.send(req, values, url=url).json()
        return client.send(req, values, params=params, body=b).json()

    if t == "none":
        data = send()
        yield _records(data, selector), data, summary(req.method, path), True
        return

    if t == "next_url":
        data, where = send(), path
        while True:
            nxt = dig(data, pager.next_path)
            last = (pager.done_path is not None and dig(data, pager.done_path) is True) or not nxt
            yield _records(data, selector), data, summary(req.method, where), last
            if last:
                return
            data, where = send(url=nxt), nxt

    if t in ("after_cursor", "starting_after"):
        token = None
        while True:
            data = send(token)
            recs = _records(data, selector)
            asked = token
            if t == "after_cursor":
                token = dig(data, pager.next_path)
            else:
                token = recs[-1].get(pager.next_path or "id") if recs and dig(data, pager.has_more_path or "has_more") else None
            yield recs, data, summary(req.method, path, asked, pager.param or ""), not token
            if not token:
                return

    if t in ("page", "offset"):
        n = pager.start
        while True:
            data = send(n)
            recs = _records(data, selector)
            last = (not recs or (pager.has_more_path is not None and not dig(data, pager.has_more_path))
                    or bool(pager.page_size and len(recs) < pager.page_size))
            yield recs, data, summary(req.method, path, n, pager.param or t), last
            if last:
                return
            n = n + 1 if t == "page" else n + len(recs)

    if t == "link_header":
        resp = client.send(req, values)
        while True:
            data = resp.json()
            nxt = resp.links.get("next", {}).get("url")
            yield _records(data, selector), data, summary(req.method, str(resp.request.url)), not nxt
            if not nxt:
                return
            resp = client.send(req, values, url=nxt)

    raise ValueError(f"paginator {t!r} is handled by the stream reader, not paginate()")


def _records(data: Any, selector: str) -> list[dict]:
    recs = dig(data, selector, default=[])
    if recs is None:
        return []
    if isinstance(recs, dict):
        return [recs]
    return list(recs)
