"""The read-only web dashboard: a small ASGI app (Starlette) over the ledger's data.

Every page is served by the app itself (``static/``: one HTML file, one script, one
style sheet; nothing from the internet) and reads the JSON API below it, whose
answers are the data of the CLI's ``--json`` (``tags``, ``status``, ``show``,
``logs``, ``failures``, ``trend``) plus paged job tables.  It never writes to Redis:
only GET and HEAD are served, and every handler calls reading functions only.

Access: bound to a loopback address, any local client may read it, but only with a
``Host`` of ``localhost``/``127.0.0.1``/``[::1]`` (a page elsewhere that rebinds its
name to 127.0.0.1 cannot read the data).  With a token, every request must carry it:
``Authorization: Bearer <token>``, or ``?token=`` once, which sets a cookie.
"""

from __future__ import annotations

import hmac
import importlib.resources
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from jobledger.errors import JobledgerError, NotFound, UsageError
from jobledger.ids import is_tag, validate_job_id, validate_tag
from jobledger.keys import layout_for
from jobledger.ledger import Ledger
from jobledger.pages import JobPages
from jobledger.text import json_safe

log = logging.getLogger(__name__)

__all__ = ["COOKIE", "LOOPBACK_HOSTS", "create_app", "is_loopback"]

COOKIE = "jobledger_token"
_EVENT_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``::1``."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _static(name: str) -> bytes:
    return (importlib.resources.files("jobledger") / "static" / name).read_bytes()


def create_app(
    client: redis.Redis,
    *,
    token: str | None = None,
    poll_ms: int = 1000,
    cookie: str = COOKIE,
    logs: bool = True,
    tag: str | None = None,
) -> Any:
    """The dashboard for the tags on ``client``.  ``token``: required on every request
    (None: any client with a loopback Host may read); ``cookie``: the name the token is
    kept under in the browser (one per port: cookies are shared across a host's ports);
    ``logs``: serve the tails of job logs (read as this process's user)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    pages = JobPages()
    assets = {name: _static(name) for name in _STATIC}
    index = (
        assets["index.html"]
        .replace(b"{{POLL_MS}}", str(int(poll_ms)).encode())
        .replace(b"{{TAG}}", validate_tag(tag).encode() if tag else b"")
    )

    def ledger(request: Request) -> Ledger:
        return Ledger(client, validate_tag(request.path_params["tag"]))

    def integer(request: Request, name: str, default: int, low: int, high: int) -> int:
        text = request.query_params.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{name} must be a whole number, not {text!r}") from None
        if not low <= value <= high:
            raise UsageError(f"{name} must be between {low} and {high}")
        return value

    def api_tags(request: Request) -> Any:
        names = sorted(str(n) for n in client.smembers(layout_for(client).tags_registry()))
        # A name written there by hand that is no tag is skipped, not fatal to the page.
        return {"tags": {n: Ledger(client, n).counts() for n in names if is_tag(n)}}

    def api_tag(request: Request) -> Any:
        from jobledger.overview import overview

        key = request.query_params.get("key") or None
        return overview(
            ledger(request), events=integer(request, "events", 10, 0, 1000), top=10, top_key=key
        ).as_dict()

    def api_jobs(request: Request) -> Any:
        q = request.query_params
        return pages.page(
            ledger(request),
            state=q.get("state") or "ALL",
            sort=q.get("sort") or "job_id",
            descending=q.get("desc", "") in ("1", "true", "yes"),
            offset=integer(request, "offset", 0, 0, 10**9),
            limit=integer(request, "limit", 50, 1, 1000),
        ).as_dict()

    def api_job(request: Request) -> Any:
        from jobledger.details import job_details

        return job_details(ledger(request), validate_job_id(request.path_params["job_id"]))

    def api_logs(request: Request) -> Any:
        from jobledger.details import log_tail

        stream = request.query_params.get("stream") or "stdout"
        if stream not in ("stdout", "stderr"):
            raise UsageError("stream must be stdout or stderr")
        job_id = validate_job_id(request.path_params["job_id"])
        lines = integer(request, "lines", 50, 1, 10_000)
        return log_tail(ledger(request), job_id, stream, lines, read=logs)

    def api_failures(request: Request) -> Any:
        from jobledger.failures import FAILURE_STATES, tag_failures

        found = tag_failures(ledger(request), FAILURE_STATES, resubmitted=False)
        return {
            "tag": request.path_params["tag"],
            "total": sum(g.count for g in found.groups),
            "resubmitted_not_grouped": found.resubmitted,
            "groups": [g.as_dict(n) for n, g in enumerate(found.groups, 1)],
        }

    def api_trend(request: Request) -> Any:
        from jobledger.trend import binned, summarize, trend

        key = request.query_params.get("key")
        if not key:
            raise UsageError("give ?key=RESULT_KEY (or a pattern such as reward_*)")
        agg = request.query_params.get("agg") or "last"
        points = trend(ledger(request), key, agg=agg)
        data: dict[str, Any] = {
            "tag": request.path_params["tag"],
            "key": key,
            "agg": agg,
            "summary": summarize(points),
        }
        bins = integer(request, "bins", 0, 0, 100_000)
        if bins:
            data["bins"] = binned(points, bins)
        else:
            data["points"] = [p.as_dict() for p in points]
        return data

    def api_events(request: Request) -> Any:
        after = request.query_params.get("after") or "0-0"
        if not _EVENT_ID.fullmatch(after):
            raise UsageError(f"after must be an event ID (1764641234567-0), not {after!r}")
        count = integer(request, "count", 100, 1, 1000)
        return {
            "tag": request.path_params["tag"],
            "events": ledger(request).events_after(after, count),
        }

    def api_unknown(request: Request) -> Any:
        raise NotFound(f"Not Found: no API endpoint {request.url.path} (see docs/cli.md)")

    def json_endpoint(handler: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(json_safe(handler(request)))
            except NotFound as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except JobledgerError as exc:
                return JSONResponse(
                    {"error": str(exc)}, status_code=400 if exc.exit_code == 2 else 500
                )
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("dashboard: Redis unavailable on %s: %s", request.url.path, exc)
                return JSONResponse({"error": f"Redis unavailable: {exc}"}, status_code=503)
            except redis.RedisError as exc:  # e.g. an ACL that refuses a read
                log.warning("dashboard: Redis error on %s: %s", request.url.path, exc)
                return JSONResponse({"error": f"Redis error: {exc}"}, status_code=500)

        return endpoint

    def asset(name: str) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            body = index if name == "index.html" else assets[name]
            return Response(body, media_type=_STATIC[name])

        return endpoint

    routes = [
        Route("/", asset("index.html"), methods=["GET", "HEAD"]),
        Route("/static/app.js", asset("app.js"), methods=["GET", "HEAD"]),
        Route("/static/app.css", asset("app.css"), methods=["GET", "HEAD"]),
        Route("/api/tags", json_endpoint(api_tags), methods=["GET", "HEAD"]),
        Route("/api/tags/{tag}", json_endpoint(api_tag), methods=["GET", "HEAD"]),
        Route("/api/tags/{tag}/jobs", json_endpoint(api_jobs), methods=["GET", "HEAD"]),
        Route("/api/tags/{tag}/jobs/{job_id}", json_endpoint(api_job), methods=["GET", "HEAD"]),
        Route(
            "/api/tags/{tag}/jobs/{job_id}/logs", json_endpoint(api_logs), methods=["GET", "HEAD"]
        ),
        Route("/api/tags/{tag}/failures", json_endpoint(api_failures), methods=["GET", "HEAD"]),
        Route("/api/tags/{tag}/trend", json_endpoint(api_trend), methods=["GET", "HEAD"]),
        Route("/api/tags/{tag}/events", json_endpoint(api_events), methods=["GET", "HEAD"]),
        Route("/api/{rest:path}", json_endpoint(api_unknown), methods=["GET", "HEAD"]),
    ]
    inner = Starlette(routes=routes)
    return _Guard(inner, token=token, cookie=cookie)


class _Guard:
    """ASGI middleware: only GET/HEAD, the token (when set) or a loopback Host, and
    headers that keep the page from being framed or sniffed."""

    def __init__(self, app: Any, *, token: str | None, cookie: str = COOKIE) -> None:
        self.app = app
        self.token = token
        self.cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await _plain(send, 404, b"not found\n")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        api = str(scope.get("path", "")).startswith("/api/")
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(
                send, 405, b"read-only: only GET and HEAD\n", {"allow": "GET, HEAD"}, api=api
            )
            return
        cookie_to_set = None
        if self.token is None:
            if not is_loopback(_host_name(headers.get("host", "")).lower()):
                await _plain(
                    send, 403, b"forbidden: this dashboard answers to localhost only\n", api=api
                )
                return
        else:
            given = _bearer(headers) or _cookie(headers, self.cookie) or ""
            from_query = _query_token(scope)
            if from_query and _same(from_query, self.token):
                cookie_to_set = from_query
            elif not _same(given, self.token):
                await _plain(
                    send,
                    401,
                    b"unauthorized: give the dashboard's token (?token=...)\n",
                    {"www-authenticate": "Bearer"},
                    api=api,
                )
                return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                if cookie_to_set is not None:
                    cookie = f"{self.cookie}={cookie_to_set}; Path=/; HttpOnly; SameSite=Strict"
                    extra.append((b"set-cookie", cookie.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(headers: dict[str, str], name: str) -> str | None:
    from starlette.requests import cookie_parser  # lenient, as browsers are

    return cookie_parser(headers.get("cookie", "")).get(name)


def _query_token(scope: Scope) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


async def _plain(
    send: Send, status: int, body: bytes, extra: dict[str, str] | None = None, *, api: bool = False
) -> None:
    """A refusal: ``{"error": ...}`` for the API, plain text for a page."""
    kind = b"text/plain; charset=utf-8"
    if api:
        body = json.dumps({"error": body.decode().strip()}).encode()
        kind = b"application/json"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
