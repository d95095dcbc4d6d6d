"""`POST /webhooks/git` (DESIGN §10): push events from GitHub, Gitea and GitLab.

Reads the body (up to 25 MiB, past the app's 1 MiB limit for other routes), hands it to the
webhook desk (bot/deploy/webhooks.py) and renders what it did. A missing or wrong signature is 401
and nothing else; every other outcome is 2xx, because forges disable hooks that keep failing.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.deploy.service import DeployService
from bot.deploy.webhooks import MAX_BODY, Delivery, NotAuthentic, Outcome, WebhookDesk

log = logging.getLogger(__name__)

PATH = "/webhooks/git"
CHUNK = 256 * 1024


def register(app: web.Application, service: DeployService) -> None:
    desk = WebhookDesk(service)
    if not service.config.secrets.webhook_secret:
        log.info("DEPLOYBOT_WEBHOOK_SECRET is not set: %s refuses every delivery", PATH)

    async def handle_git_webhook(request: web.Request) -> web.Response:
        body = await _read_body(request)
        if body is None:
            return web.json_response({"error": "payload too large"}, status=413)
        try:
            outcome = await desk.receive(Delivery(request.headers, body))
        except NotAuthentic:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(render(outcome), status=outcome.status)

    app.router.add_post(PATH, handle_git_webhook)


async def _read_body(request: web.Request) -> bytes | None:
    """The body, or None when it is over MAX_BODY (read straight from the stream: the app's
    client_max_size is for the other routes)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def render(outcome: Outcome) -> dict:
    if outcome.pong:
        return {"pong": True}
    answer: dict = {}
    if outcome.deploys:
        answer["deploys"] = [
            {"id": d.id, "environment": d.environment, "status": d.status, "commit": d.commit_hash}
            for d in outcome.deploys
        ]
    if outcome.ignored:
        reasons = outcome.ignored
        # one reason for the whole delivery, or one per environment it skipped
        answer["ignored"] = (
            reasons[""] if list(reasons) == [""] else {e or "*": r for e, r in reasons.items()}
        )
    return answer
