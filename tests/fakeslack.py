"""Slack for the tests: LocalSlack with failure injection, Block Kit validation and assertion helpers.
Slack's side of the bot (commands, clicks, submissions) is bot/console/driver.py's SlackDriver.

    async with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        ...
        async with SlackDriver(bot_url, fake, secret=SECRET) as slack:
            reply = await slack.command("/deploy production main", user=ADMIN)
            card = fake.card("C0DEPLOY1", fake.calls_to("chat.postMessage")[0].response["ts"])

Every Block Kit payload the bot sends is checked with tests/blockkit.py; a refused one is answered
like Slack does (invalid_blocks / invalid_arguments) and kept in `fake.violations`, and leaving the
`async with` block with violations fails the test (set `strict=False` or clear the list to allow them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.console.workspace import BLOCK_CARRIERS, Answer, ApiCall, LocalSlack
from tests import blockkit


@dataclass(frozen=True)
class Violation:
    method: str
    problems: tuple[str, ...]
    payload: dict[str, Any]


@dataclass
class _Failure:
    status: int
    error: str | None
    retry_after: int
    times: int


class FakeSlack(LocalSlack):
    def __init__(self, *, strict: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strict = strict
        self.violations: list[Violation] = []
        self._failures: dict[str, list[_Failure]] = {}

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await self.close()
        if self.strict and exc_type is None and self.violations:
            listed = "\n".join(f"{v.method}: {'; '.join(v.problems)}" for v in self.violations)
            raise AssertionError(f"the bot sent Block Kit that Slack refuses:\n{listed}")

    # ---- failure injection

    def fail(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail.

        status 429: `ratelimited` with Retry-After; 5xx: an HTML error page; `error="..."`: HTTP 200
        with `ok: false` (status ignored). `method` may also be "response_url" or "file_upload".
        """
        failure = _Failure(200 if error else status, error, retry_after, times)
        self._failures.setdefault(method, []).append(failure)

    def intercept(self, method: str, params: dict[str, Any]) -> Answer | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        if failure.error:
            return Answer(200, {"ok": False, "error": failure.error})
        if failure.status == 429:
            return Answer(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(failure.retry_after)}
            )
        return Answer(
            failure.status, "<html><body>Internal Server Error</body></html>", content_type="text/html"
        )

    # ---- validation

    def block_problems(self, method: str, payload: dict[str, Any]) -> list[str]:
        problems = super().block_problems(method, payload) + _validate(method, payload)
        problems = list(dict.fromkeys(problems))
        if problems:
            self.violations.append(Violation(method, tuple(problems), payload))
        return problems

    # ---- assertions

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def card(self, channel: str, ts: str) -> dict[str, Any]:
        """The message as the channel shows it now (after every chat.update)."""
        message = self.messages.get((channel, ts))
        if message is None:
            raise AssertionError(f"no message {ts} in {channel}")
        return message

    def ephemerals(self, user: str) -> list[dict[str, Any]]:
        """Ephemeral messages shown to `user` (chat.postEphemeral and response_url), oldest first."""
        return self.ephemeral.get(user, [])


def _validate(method: str, payload: dict[str, Any]) -> list[str]:
    """tests/blockkit.py's verdict on the message or view in `payload` (it raises AssertionError)."""
    try:
        if BLOCK_CARRIERS[method] == "view":
            blockkit.validate_view(payload.get("view"))
        else:
            blockkit.validate_message({k: payload[k] for k in ("text", "blocks") if k in payload})
    except AssertionError as exc:
        return [str(exc)]
    return []
