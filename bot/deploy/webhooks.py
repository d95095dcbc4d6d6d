"""Git webhooks (DESIGN §10): push events from GitHub, Gitea and GitLab that deploy an environment.

This module owns what a delivery means once it arrived: whether it is authentic (HMAC-SHA256 of the
body, or GitLab's shared token, compared in constant time), what push it describes, which
environments it deploys (`auto_deploy_branch` of `repo_name`, or of the clone URL equal to `repo`),
and the deploys it starts or queues. A newer push replaces an older queued webhook deploy of the same
environment. Deploys go through `DeployService.trigger` like any other, so locks, freezes, approvals
and branch rules apply; only `deployers` does not (configuring `auto_deploy_branch` authorizes it).
Whatever is not deployed is answered as ignored, with the reason, and audited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Environment
from bot.deploy import git
from bot.deploy.events import DeployFinished
from bot.deploy.service import DeployService
from bot.errors import DeployError, QueueFull
from bot.i18n import t
from storage import audit, waiting
from storage import repository as repo
from storage.models import Deploy, Status

log = logging.getLogger(__name__)

MAX_BODY = 25 * 1024 * 1024
SOURCE = "webhook"
FETCH_TIMEOUT = 8.0  # forges give up on a delivery after about 10 s
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_UNSAFE = re.compile(r"[^\w.@:+/-]")


@dataclass(frozen=True)
class Delivery:
    """What the forge sent, as received: headers (any case) and the raw body."""

    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name, "") or ""


@dataclass(frozen=True)
class Push:
    forge: str
    delivery_id: str
    branch: str
    after: str
    full_name: str
    clone_urls: tuple[str, ...]
    pusher: str
    message: str = ""

    @property
    def actor(self) -> str:
        return f"webhook:{self.pusher}"


@dataclass
class Outcome:
    """The answer to a delivery: `status` 200 (ping), 202 (deployed, queued or ignored)."""

    status: int = 202
    deploys: list[Deploy] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)  # environment ("" for none) -> reason
    pong: bool = False


class NotAuthentic(Exception):
    """No secret configured, or a missing or wrong signature or token."""


def forge_of(delivery: Delivery) -> str | None:
    """Gitea also sends GitHub's headers, so it is asked first."""
    if delivery.header("X-Gitea-Event"):
        return "gitea"
    if delivery.header("X-Gitlab-Event"):
        return "gitlab"
    if delivery.header("X-GitHub-Event"):
        return "github"
    return None


def authenticate(delivery: Delivery, secret: str) -> str:
    """The forge that sent `delivery` when it proves it knows `secret`, else NotAuthentic."""
    forge = forge_of(delivery)
    if not secret or forge is None:
        raise NotAuthentic
    key = secret.encode()
    if forge == "gitlab":
        given = delivery.header("X-Gitlab-Token").encode()
        expected = key
    else:
        expected = hmac.new(key, delivery.body, hashlib.sha256).hexdigest().encode()
        if forge == "gitea":
            given = delivery.header("X-Gitea-Signature").strip().lower().encode()
        else:
            signature = delivery.header("X-Hub-Signature-256").strip()
            given = (
                signature.removeprefix("sha256=").lower().encode() if signature.startswith("sha256=") else b""
            )
    if not given or not hmac.compare_digest(expected, given):
        raise NotAuthentic
    return forge


class Ignored(Exception):
    """A delivery that deploys nothing, with the reason."""

    def __init__(self, reason: str, pusher: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.pusher = pusher


def event_of(forge: str, delivery: Delivery) -> str:
    header = {"github": "X-GitHub-Event", "gitea": "X-Gitea-Event", "gitlab": "X-Gitlab-Event"}[forge]
    return delivery.header(header).strip()


def delivery_id(forge: str, delivery: Delivery) -> str:
    """The forge's id of this delivery, or the hash of its body when it sent none (older GitLab),
    so that a redelivery is still recognized."""
    header = {"github": "X-GitHub-Delivery", "gitea": "X-Gitea-Delivery", "gitlab": "X-Gitlab-Event-UUID"}
    given = _UNSAFE.sub("", delivery.header(header[forge]))[:100]
    return given or "sha256-" + hashlib.sha256(delivery.body).hexdigest()[:32]


def parse_push(forge: str, delivery: Delivery) -> Push:
    """The push a delivery describes; Ignored for anything that deploys nothing by its nature."""
    try:
        payload = json.loads(delivery.body)
    except ValueError:
        raise Ignored("malformed payload: not JSON") from None
    if not isinstance(payload, dict):
        raise Ignored("malformed payload: not a JSON object")
    pusher = _pusher(forge, payload)
    ref, after = _text(payload.get("ref")), _text(payload.get("after")).lower()
    if not ref.startswith("refs/heads/"):
        raise Ignored(f"not a branch push: {ref[:120] or 'no ref'}", pusher)
    branch = ref.removeprefix("refs/heads/")
    if after and set(after) == {"0"}:
        raise Ignored(f"branch {branch[:100]} deleted", pusher)
    if not _COMMIT.match(after):
        raise Ignored("malformed payload: `after` is not a commit hash", pusher)
    if forge == "gitlab":
        project = _mapping(payload.get("project"))
        full_name = _text(project.get("path_with_namespace"))
        urls = (project.get("git_http_url"), project.get("git_ssh_url"), project.get("web_url"))
    else:
        repository = _mapping(payload.get("repository"))
        full_name = _text(repository.get("full_name"))
        urls = (repository.get("clone_url"), repository.get("ssh_url"), repository.get("html_url"))
    return Push(
        forge=forge,
        delivery_id=delivery_id(forge, delivery),
        branch=branch,
        after=after,
        full_name=full_name,
        clone_urls=tuple(_text(url) for url in urls if _text(url)),
        pusher=pusher,
        message=_head_message(forge, payload, after),
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _pusher(forge: str, payload: Mapping[str, Any]) -> str:
    if forge == "gitlab":
        names = [payload.get("user_username"), payload.get("user_name")]
    else:
        pusher, sender = _mapping(payload.get("pusher")), _mapping(payload.get("sender"))
        names = [pusher.get("login"), pusher.get("username"), pusher.get("name"), sender.get("login")]
    name = next((_text(n) for n in names if _text(n)), "unknown")
    return _UNSAFE.sub("", name)[:100] or "unknown"


def _head_message(forge: str, payload: Mapping[str, Any], after: str) -> str:
    head = _mapping(payload.get("head_commit"))
    if not head:
        commits = payload.get("commits")
        listed = [_mapping(c) for c in commits] if isinstance(commits, list) else []
        head = next((c for c in listed if _text(c.get("id")).lower() == after), {})
    lines = _text(head.get("message")).splitlines()
    return lines[0][:200].replace("\x00", "") if lines else ""


def normalize_url(url: str) -> str:
    """A clone URL reduced to host/path, so that `https://git@Example.com/acme/shop.git/`,
    `ssh://git@example.com:22/acme/shop` and `git@example.com:acme/shop.git` are equal."""
    url = url.strip()
    if "://" in url:
        url = url.split("://", 1)[1]
        host, _, path = url.partition("/")
        host = host.rsplit("@", 1)[-1].split(":", 1)[0]
    elif re.match(r"^[\w.-]+@[\w.-]+:", url) or re.match(r"^[\w.-]+:(?!/)", url):
        host, _, path = url.rsplit("@", 1)[-1].partition(":")
    else:
        return url.rstrip("/").removesuffix(".git").rstrip("/")  # a local path: as written
    path = path.strip("/").removesuffix(".git").rstrip("/")
    return f"{host.lower()}/{path.lower()}"


def deploys_push(env: Environment, push: Push) -> bool:
    if not env.auto_deploy_branch or env.auto_deploy_branch != push.branch:
        return False
    if env.repo_name and push.full_name and env.repo_name.lower() == push.full_name.lower():
        return True
    urls = {normalize_url(url) for url in push.clone_urls}
    return bool(env.repo) and normalize_url(env.repo) in urls


class WebhookDesk:
    """Turns authentic deliveries into deploys through the service."""

    def __init__(self, service: DeployService) -> None:
        self.service = service
        self.config = service.config

    async def receive(self, delivery: Delivery) -> Outcome:
        """For an authentic delivery (`authenticate` first): deploy, queue, or ignore."""
        forge = authenticate(delivery, self.config.secrets.webhook_secret)
        event = event_of(forge, delivery)
        if forge != "gitlab" and event == "ping":
            return Outcome(status=200, pong=True)
        try:
            if event.lower() not in ("push", "push hook"):
                raise Ignored(f"not a push event: {event[:60] or 'none'}")
            push = parse_push(forge, delivery)
        except Ignored as ignored:
            return await self._ignore(Outcome(), None, ignored.reason, ignored.pusher or "unknown")
        outcome = Outcome()
        targets = [env for env in self.config.environments.values() if deploys_push(env, push)]
        if not targets:
            where = f"{push.full_name or 'unknown repository'}@{push.branch}"
            return await self._ignore(outcome, None, f"no environment deploys {where[:200]}", push.pusher)
        for env in targets:
            await self._deploy(outcome, env, push)
        return outcome

    async def _deploy(self, outcome: Outcome, env: Environment, push: Push) -> None:
        await self._fetch(env, push.after)
        request_key = f"webhook:{push.delivery_id}:{env.name}"
        for attempt in range(2):
            try:
                deploy = await self.service.trigger(
                    env.name,
                    push.branch,
                    user=push.actor,
                    description=push.message,
                    source=SOURCE,
                    request_key=request_key,
                    queue=True,
                    _commit=push.after,
                )
                break
            except QueueFull as exc:
                # the queue may be full of older pushes this one replaces anyway
                if attempt == 0 and await self._supersede(env, push, before_id=None):
                    continue
                await self._ignore(outcome, env, exc.message(self.config.locale), push.pusher)
                return
            except DeployError as exc:  # a lock, a freeze, a branch rule, no runner…
                await self._ignore(outcome, env, exc.message(self.config.locale), push.pusher)
                return
        await self._supersede(env, push, before_id=deploy.id)
        outcome.deploys.append(deploy)

    async def _supersede(self, env: Environment, push: Push, *, before_id: int | None) -> int:
        """Cancel the queued webhook deploys of `env` older than `before_id` (all, when None).
        Each delivery cancels only those queued before its own deploy, so two deliveries at once
        leave the newer one queued, whichever finishes first; a deploy that started meanwhile is
        left alone (the cancel is a compare-and-set on `queued`)."""
        async with self.service.db.session() as session:
            older = await waiting.queued_ids(session, env.name, source=SOURCE, before_id=before_id)
        message = t(self.config.locale, "outcome.superseded", commit=push.after[:8])
        cancelled = 0
        for deploy_id in older:
            async with self.service.db.session() as session:
                ended = await repo.transition(
                    session, deploy_id, Status.CANCELLED, cancelled_by=push.actor, error_message=message
                )
                if ended:
                    await audit.record(
                        session, actor=push.actor, action="cancel", environment=env.name,
                        deploy_id=deploy_id, detail=message,
                    )  # fmt: skip
            if ended:
                cancelled += 1
                await self.service.events.publish(deploy_id, DeployFinished)
        return cancelled

    async def _fetch(self, env: Environment, sha: str) -> None:
        """A local repository that lacks the pushed commit fetches it from its origin; failing
        that the deploy goes on with the sha (the script fetches it)."""
        if not env.repo:
            return
        try:
            await git.fetch_commit(env.repo, sha, timeout=FETCH_TIMEOUT)
        except git.GitError as exc:
            log.warning("webhook: could not fetch %s into %s: %s", sha[:12], env.repo, exc)

    async def _ignore(self, outcome: Outcome, env: Environment | None, reason: str, pusher: str) -> Outcome:
        outcome.ignored[env.name if env else ""] = reason
        async with self.service.db.session(background=True) as session:
            await audit.record(
                session,
                actor=f"webhook:{pusher}",
                action="webhook",
                environment=env.name if env else None,
                detail=reason,
            )
        log.info("webhook ignored%s: %s", f" for {env.name}" if env else "", reason)
        return outcome
