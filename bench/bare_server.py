"""The ceiling of the webhook benchmark: a bare aiohttp handler, nothing of Nyala's.

It does what any webhook must before answering: read the body, check the
``X-Hub-Signature-256`` HMAC (same function and constant-time compare as Nyala), parse
the JSON, answer 200. No database. Run: ``python -m bench.bare_server --port PORT`` with
``WHATSAPP_APP_SECRET`` set.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os

from aiohttp import web

from bot.whatsapp.webhook import SIGNATURE_HEADER, signature

SECRET = web.AppKey("secret", str)


async def receive(request: web.Request) -> web.Response:
    """``POST /webhook``: HMAC, JSON, 200."""
    body = await request.read()
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        return web.Response(status=401, text="Missing signature")
    expected = signature(request.app[SECRET], body)
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        return web.Response(status=403, text="Invalid signature")
    try:
        json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return web.Response(status=400, text="Malformed JSON")
    return web.Response(text="OK")


async def healthz(_request: web.Request) -> web.Response:
    """``GET /healthz``: up."""
    return web.json_response({"status": "ok"})


def create_app(secret: str) -> web.Application:
    """The bare application (same body limit as Nyala's default)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[SECRET] = secret
    app.router.add_post("/webhook", receive)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    secret = os.environ["WHATSAPP_APP_SECRET"]
    web.run_app(create_app(secret), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
