"""`POST /webhooks/git` (DESIGN §10) over real HTTP to the app `deploybot serve` runs, on SQLite and
PostgreSQL: pushes from GitHub, Gitea and GitLab (payloads in tests/webhook_payloads/, signed here)
deploy the pushed commit; bad signatures leave nothing behind; what is not deployed is answered 202
with the reason and audited; a busy environment queues, and a newer push replaces the older queued
one."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.deploy.webhooks import normalize_url
from bot.i18n import t
from storage.models import AuditEvent, Deploy, Status
from tests.conftest import SCRIPTS
from tests.rest.test_rest import Api, serving

PAYLOADS = Path(__file__).parent.parent / "webhook_payloads"
SECRET = "whsec-0123456789abcdef"
PATH = "/webhooks/git"
DEPLOYER = "U0DEPLOYER"


def payload(name: str, **changes) -> dict:
    data = json.loads((PAYLOADS / f"{name}.json").read_text())
    data.update(changes)
    return data


def github(body: dict, *, event: str = "push", secret: str = SECRET, delivery: str | None = None):
    raw = json.dumps(body).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={signature}",
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/5f2b1a0",
    }
    return raw, headers


def gitea(body: dict, *, secret: str = SECRET, delivery: str | None = None):
    raw = json.dumps(body).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    delivery = delivery or str(uuid.uuid4())
    headers = {  # Gitea also sends GitHub's and Gogs' names for the same things
        "X-Gitea-Event": "push",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": signature,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Gogs-Event": "push",
        "Content-Type": "application/json",
    }
    return raw, headers


def gitlab(body: dict, *, token: str = SECRET, delivery: str | None = None):
    headers = {
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "Content-Type": "application/json",
    }
    return json.dumps(body).encode(), headers


async def send(api: Api, signed) -> tuple[int, dict]:
    raw, headers = signed
    response = await api.client.post(PATH, data=raw, headers=headers)
    return response.status, await response.json()


async def deploys(api: Api) -> list[Deploy]:
    async with api.service.db.session() as session:
        return list((await session.execute(select(Deploy).order_by(Deploy.id))).scalars())


async def audit_rows(api: Api, action: str = "webhook") -> list[AuditEvent]:
    async with api.service.db.session() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list((await session.execute(query)).scalars())


async def finished(api: Api, deploy_id: int, timeout: float = 15) -> Deploy:
    async with asyncio.timeout(timeout):
        while not (deploy := await api.service.get(deploy_id)).state.is_finished:
            await asyncio.sleep(0.05)
    return deploy


def environments(git_repo, script: str = "steps.sh", **extra) -> dict:
    return {
        "production": {
            "script": str(SCRIPTS / script),
            "repo": str(git_repo.path),
            "auto_deploy_branch": "main",
            "repo_name": "acme/shop",
            "deployers": [DEPLOYER],  # webhooks deploy without being named here
            **extra,
        },
        "staging": {"script": str(SCRIPTS / "steps.sh"), "deployers": [DEPLOYER]},
    }


@pytest.fixture
async def api(make_config, git_repo) -> AsyncIterator[Api]:
    config = make_config(environments(git_repo), environ={"DEPLOYBOT_WEBHOOK_SECRET": SECRET})
    async with serving(config) as served:
        yield served


async def test_github_push_deploys_the_pushed_commit(api, git_repo) -> None:
    status, body = await send(api, github(payload("github_push", after=git_repo.second)))
    assert status == 202, body
    [shown] = body["deploys"]
    assert shown["environment"] == "production" and shown["commit"] == git_repo.second
    deploy = await finished(api, shown["id"])
    assert deploy.state is Status.SUCCESS, deploy.error_message
    assert (deploy.source, deploy.deployed_by, deploy.branch) == ("webhook", "webhook:octocat", "main")
    assert deploy.commit_hash == git_repo.second and deploy.description == "Fix the checkout total"
    log = (await api.service.logs(deploy.id)).text
    assert f"deployed main at {git_repo.second} by webhook:octocat" in log


async def test_ping_answers_pong(api) -> None:
    assert await send(api, github(payload("github_ping"), event="ping")) == (200, {"pong": True})
    assert await deploys(api) == []


async def test_bad_or_missing_signature_is_401_and_nothing_else(api, git_repo) -> None:
    body = payload("github_push", after=git_repo.second)
    raw, headers = github(body, secret="not-the-secret")
    cases = [
        (raw, headers),
        (raw, {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}),
        (raw, {**headers, "X-Hub-Signature-256": "sha1=" + "0" * 40}),
        (raw + b" ", github(body)[1]),  # signed, then altered
        gitea(payload("gitea_push"), secret="wrong"),
        gitlab(payload("gitlab_push"), token="wrong"),
        gitlab(payload("gitlab_push"), token=""),
        (raw, {"Content-Type": "application/json"}),  # no forge at all
    ]
    for signed in cases:
        status, answer = await send(api, signed)
        assert status == 401, (signed[1], answer)
    assert await deploys(api) == [] and await audit_rows(api) == []


async def test_no_secret_configured_is_401(make_config, git_repo) -> None:
    async with serving(make_config(environments(git_repo))) as api:
        status, _ = await send(api, github(payload("github_push", after=git_repo.second), secret=""))
        assert status == 401
        status, _ = await send(api, gitlab(payload("gitlab_push"), token=""))
        assert status == 401
        assert await deploys(api) == [] and await audit_rows(api) == []


async def test_other_branch_other_repo_and_deletion_are_ignored_and_audited(api, git_repo) -> None:
    pushes = [
        payload("github_push", ref="refs/heads/feature/cart", after=git_repo.second),
        payload("github_push", after=git_repo.second, repository={"full_name": "acme/blog"}),
        payload("github_push", after="0" * 40, deleted=True),
        payload("github_push", ref="refs/tags/v1.2.0", after=git_repo.second),
    ]
    reasons = []
    for body in pushes:
        status, answer = await send(api, github(body))
        assert status == 202 and "deploys" not in answer, answer
        reasons.append(answer["ignored"])
    assert "Acme/shop@feature/cart" in reasons[0] and "acme/blog@main" in reasons[1]
    assert reasons[2] == "branch main deleted" and "refs/tags/v1.2.0" in reasons[3]
    status, answer = await send(api, github(payload("github_push"), event="issues"))
    assert status == 202 and answer["ignored"] == "not a push event: issues"
    rows = await audit_rows(api)
    assert [row.detail for row in rows] == [*reasons, "not a push event: issues"]
    assert rows[0].actor == "webhook:octocat"
    assert await deploys(api) == []


async def test_the_same_delivery_twice_deploys_once(api, git_repo) -> None:
    signed = gitea(payload("gitea_push", after=git_repo.second, repository={"full_name": "Acme/Shop"}))
    first = await send(api, signed)
    second = await send(api, signed)
    assert first[0] == second[0] == 202
    assert first[1]["deploys"][0]["id"] == second[1]["deploys"][0]["id"]
    [deploy] = await deploys(api)
    assert deploy.deployed_by == "webhook:lilei" and deploy.request_key.endswith(":production")
    await finished(api, deploy.id)


async def test_busy_queues_and_a_newer_push_replaces_the_older_queued_one(make_config, git_repo) -> None:
    config = make_config(environments(git_repo, "sleepy.sh"), environ={"DEPLOYBOT_WEBHOOK_SECRET": SECRET})
    async with serving(config, base_env={"SLEEP_SECONDS": "30"}) as api:
        third = git_repo.commit("third")
        fourth = git_repo.commit("fourth")
        _, running = await send(api, github(payload("github_push", after=git_repo.second)))
        status, queued = await send(api, github(payload("github_push", after=third)))
        assert status == 202 and queued["deploys"][0]["status"] == "queued"
        # two newer deliveries at once: exactly one of them stays queued, the newest
        answers = await asyncio.gather(
            send(api, github(payload("github_push", after=fourth))),
            send(api, github(payload("github_push", after=fourth))),
        )
        assert all(status == 202 for status, _ in answers)
        rows = {row.id: row for row in await deploys(api)}
        assert rows[running["deploys"][0]["id"]].state is Status.RUNNING
        older = rows[queued["deploys"][0]["id"]]
        assert older.state is Status.CANCELLED
        assert older.error_message == t(config.locale, "outcome.superseded", commit=fourth[:8])
        still = [row for row in rows.values() if row.state is Status.QUEUED]
        assert len(still) == 1 and still[0].commit_hash == fourth
        assert still[0].id == max(answer["deploys"][0]["id"] for _, answer in answers)
        cancels = await audit_rows(api, "cancel")
        assert older.id in {row.deploy_id for row in cancels}


async def test_a_lock_is_ignored_with_its_reason(api, git_repo) -> None:
    await api.service.locks.lock("production", user=DEPLOYER, reason="release freeze")
    status, answer = await send(api, github(payload("github_push", after=git_repo.second)))
    assert status == 202 and "deploys" not in answer
    assert DEPLOYER in answer["ignored"]["production"] and "release freeze" in answer["ignored"]["production"]
    assert await deploys(api) == []
    [row] = await audit_rows(api)
    assert row.environment == "production" and row.detail == answer["ignored"]["production"]


async def test_clone_url_matching_and_gitlab_token(make_config, git_repo, tmp_path) -> None:
    # no repo_name: the environment's repo names the project by an SSH URL
    envs = environments(git_repo, repo_name="", repo="ssh://git@GitLab.example.com:22/acme/shop/")
    config = make_config(envs, environ={"DEPLOYBOT_WEBHOOK_SECRET": SECRET})
    async with serving(config) as api:
        status, answer = await send(api, gitlab(payload("gitlab_push")))
        assert status == 202, answer
        [shown] = answer["deploys"]
        deploy = await finished(api, shown["id"])
        assert (deploy.deployed_by, deploy.commit_hash) == ("webhook:jsmith", payload("gitlab_push")["after"])
        assert deploy.description == "Fixed the readme"
        # the same project under another name on another host is not it
        other = payload("gitlab_push")
        other["project"] = {**other["project"], "git_http_url": "https://gitlab.example.org/acme/shop.git"}
        other["project"]["git_ssh_url"] = other["project"]["web_url"] = ""
        status, answer = await send(api, gitlab(other))
        assert status == 202 and "no environment deploys" in answer["ignored"]


async def test_a_local_repo_fetches_the_pushed_commit_from_its_origin(
    make_config, git_repo, tmp_path
) -> None:
    clone = tmp_path / "clone"
    await (await asyncio.create_subprocess_exec("git", "clone", "-q", str(git_repo.path), str(clone))).wait()
    pushed = git_repo.commit("pushed after the clone")
    envs = environments(git_repo, repo=str(clone))
    async with serving(make_config(envs, environ={"DEPLOYBOT_WEBHOOK_SECRET": SECRET})) as api:
        status, answer = await send(api, github(payload("github_push", after=pushed)))
        assert status == 202, answer
        await finished(api, answer["deploys"][0]["id"])
    check = await asyncio.create_subprocess_exec(
        "git", "-C", str(clone), "cat-file", "-e", f"{pushed}^{{commit}}"
    )
    assert await check.wait() == 0


async def test_body_over_25_mib_is_413(api) -> None:
    response = await api.client.post(
        PATH, data=b"x" * (25 * 1024 * 1024 + 1), headers={"X-GitHub-Event": "push"}
    )
    assert response.status == 413
    assert await deploys(api) == []


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://github.com/Acme/shop.git", "github.com/acme/shop"),
        ("git@github.com:Acme/shop.git", "github.com/acme/shop"),
        ("ssh://git@github.com:22/acme/shop/", "github.com/acme/shop"),
        ("https://user@github.com/acme/shop/", "github.com/acme/shop"),
        ("/srv/git/shop.git", "/srv/git/shop"),
    ],
)
def test_normalize_url(url: str, normal: str) -> None:
    assert normalize_url(url) == normal
