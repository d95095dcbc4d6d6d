"""Gates (DESIGN §9): a deploy script asks a question mid-deploy (`::gate:: <question>`) and waits
for `continue` or `abort`, one line on the pipe whose read end is in `$DEPLOY_GATE_FD`.

Two sides, each in the process where it belongs:

- `GateDesk` takes answers, wherever a button or call lands: it checks who may answer (the
  environment's approvers, else admins), writes the answer with one conditional UPDATE and its
  audit row in one transaction (storage/gates.py), and tells the deploy's owner: directly when the
  deploy runs in this process, else by a `gate:<id>` signal (bot/deploy/cluster.py). The owner's
  lease renewal also looks at its open gates, so a lost signal only delays an answer.
- `GateKeeper` is the owner's side of one running deploy: it records the question the runner found,
  answers `abort` itself once `gate_timeout_minutes` pass (as "timeout"), and when it finds the
  answer on the row it writes who answered into the log, announces it, and hands the line to the
  script (runner.py, which also stops the deploy's timeout while a gate waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from bot.config import Config
from bot.deploy import policy
from bot.deploy.cluster import Cluster
from bot.deploy.events import DeployEvent, GateAnswered, GateAsked
from bot.errors import DeployNotFound, GateAlreadyAnswered, GateAnswerInvalid, GateNotOpen, NotPermitted
from bot.i18n import Text, t
from storage import audit
from storage import gates as sql
from storage import repository as repo
from storage.db import Database
from storage.gates import ABORT, ANSWERS
from storage.models import Deploy, Status

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

TIMEOUT = "timeout"  # who answered a gate nobody answered in time
BOT = "deploybot"  # the audit actor of the timeout's answer


class RunsGates(Protocol):
    """What the desk needs of an execution in this process: look at the row for an answer now."""

    def check_gate(self) -> None: ...


class GateDesk:
    def __init__(self, config: Config, db: Database, executions: Mapping[int, RunsGates]) -> None:
        self.config = config
        self.db = db
        self.executions = executions  # the service's own, live: the deploys this process runs

    async def answer(
        self, deploy_id: int, user: str, answer: str, *, asked_at: datetime | None = None
    ) -> Deploy:
        """`user` answers the gate the running deploy waits at (the one asked at `asked_at`, when
        given: a button names its gate, so a stale one never answers the next question)."""
        if answer not in ANSWERS:
            raise GateAnswerInvalid(answer=answer[:20])
        deploy = await self._get(deploy_id)
        env = self.config.environments.get(deploy.environment)
        if env is None or not policy.may_approve(env, user):
            if env is not None:
                async with self.db.session(background=True) as session:
                    await audit.record(
                        session, actor=user, action="refused", environment=env.name,
                        deploy_id=deploy.id, detail=f"gate {answer}",
                    )  # fmt: skip
            label = env.display if env else deploy.environment
            raise NotPermitted(environment=label, action=Text("action.answer_gate"))
        _check_open(deploy, asked_at)
        here = deploy.id in self.executions
        async with self.db.session() as session:
            answered = await sql.answer(session, deploy.id, answer, user, asked_at=asked_at)
            if answered:
                await audit.record(
                    session, actor=user, action="gate", environment=deploy.environment,
                    deploy_id=deploy.id, detail=f"{answer}: {deploy.gate_question}",
                )  # fmt: skip
                if not here:  # its owner is another process: tell it now
                    await Cluster.announce_about(session, "gate", deploy.id)
        if not answered:  # answered, asked again or ended since it was read: say which
            now = await self._get(deploy.id)
            _check_open(now, asked_at)
            raise GateNotOpen(deploy_id=now.id, state=Text(f"status.{now.status}"))
        if execution := self.executions.get(deploy.id):
            execution.check_gate()
        return await self._get(deploy.id)

    def signalled(self, deploy_id: int) -> None:
        """Another process took an answer for a deploy: if it runs here, act on it now."""
        if execution := self.executions.get(deploy_id):
            execution.check_gate()

    async def _get(self, deploy_id: int) -> Deploy:
        async with self.db.session() as session:
            deploy = await repo.get_deploy(session, deploy_id)
        if deploy is None:
            raise DeployNotFound(deploy_id=deploy_id)
        return deploy


def _check_open(deploy: Deploy, asked_at: datetime | None) -> None:
    """Refuse an answer to a deploy that waits at no gate, or at another one, or was answered."""
    if deploy.state is not Status.RUNNING:
        raise GateNotOpen(deploy_id=deploy.id, state=Text(f"status.{deploy.status}"))
    if deploy.gate_question is None:
        raise GateNotOpen(deploy_id=deploy.id, state=Text("reason.gate_none"))
    if asked_at is not None and deploy.gate_asked_at != asked_at:
        raise GateNotOpen(deploy_id=deploy.id, state=Text("reason.gate_replaced"))
    if deploy.gate_answer is not None:
        raise GateAlreadyAnswered(
            deploy_id=deploy.id,
            answer=Text(f"ui.gate.answer.{deploy.gate_answer}"),
            user=deploy.gate_answered_by or "?",
        )


# --- the owner's side ----------------------------------------------------------------------------

Write = Callable[[str, Callable[["AsyncSession"], Awaitable[Any]]], Awaitable[Any]]


@dataclass(frozen=True)
class OpenGate:
    question: str
    asked_at: datetime  # the database's time it was recorded: names this gate


class GateKeeper:
    """The gates of one deploy, in the process that runs it. `write` and `publish` are the
    execution's (retried, owner-checked: they raise once the deploy is no longer ours), `log`
    appends to its log, `give` hands the answer to the script."""

    def __init__(
        self,
        deploy_id: int,
        *,
        environment: str,
        owner: str,
        timeout_minutes: float,
        write: Write,
        publish: Callable[[Callable[[Deploy], DeployEvent]], Awaitable[None]],
        log_line: Callable[[bytes], Awaitable[None]],
        give: Callable[[str], None],
    ) -> None:
        self.deploy_id = deploy_id
        self.environment = environment
        self.owner = owner
        self.timeout_seconds = timeout_minutes * 60
        self._write = write
        self._publish = publish
        self._log_line = log_line
        self._give = give
        self._open: OpenGate | None = None
        self._lock = asyncio.Lock()  # a question and the delivery of an answer never interleave
        self._timer: asyncio.Task | None = None
        self._looking: asyncio.Task | None = None
        self._look_again = False
        self._closed = False
        self.aborted_by: str | None = None  # who answered abort last ("timeout": nobody in time)

    @property
    def waiting(self) -> bool:
        return self._open is not None

    def failure_reason(self, locale: str) -> str | None:
        """Why a deploy that failed after an `abort` failed: who aborted it at its gate."""
        if self.aborted_by is None:
            return None
        if self.aborted_by == TIMEOUT:
            return t(locale, "outcome.gate_timeout", minutes=f"{self.timeout_seconds / 60:g}")
        return t(locale, "outcome.gate_aborted", user=self.aborted_by)

    async def asked(self, question: str) -> None:
        """The script reached a gate: record its question, start its timeout, announce it."""
        if self._closed:  # the script is gone already: nobody would read the answer
            return
        async with self._lock:
            asked_at = await self._write(
                "recording the gate", lambda session: sql.ask(session, self.deploy_id, self.owner, question)
            )
            self._stop_timer()
            if self._closed:  # it ended while the question was being recorded
                return
            gate = self._open = OpenGate(question, asked_at)
            self._timer = asyncio.create_task(self._expire(gate), name=f"gate-timeout-{self.deploy_id}")
        await self._publish(lambda deploy: GateAsked(deploy, question))
        self.check()  # an answer that landed while the question was being recorded was not looked for

    def check(self) -> None:
        """Look at the row for the open gate's answer (one was given, or a renewal asks)."""
        if self._open is None or self._closed:
            return
        if self._looking is not None and not self._looking.done():
            self._look_again = True  # the running look may have read the row before the answer
            return
        self._looking = asyncio.create_task(self._look(), name=f"gate-answer-{self.deploy_id}")

    def close(self) -> None:
        """The script is done: no timeout, no look, nothing more to give."""
        self._closed = True
        self._stop_timer()
        if self._looking is not None:
            self._looking.cancel()

    async def _look(self) -> None:
        try:
            while True:
                self._look_again = False
                gate = self._open
                if gate is None:
                    return
                row = await self._write(
                    "reading the gate's answer",
                    lambda session: repo.get_deploy(session, self.deploy_id, include_deleted=True),
                )
                if row is not None and row.gate_answer and row.gate_asked_at == gate.asked_at:
                    await self._deliver(gate, row.gate_answer, row.gate_answered_by or "?")
                if not self._look_again:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the deploy is not ours any more, or the bot stops: the execution says so
            log.info("deploy #%s: looking for the gate's answer stopped: %r", self.deploy_id, exc)

    async def _deliver(self, gate: OpenGate, answer: str, user: str) -> None:
        async with self._lock:
            if self._open is not gate:
                return
            self._open = None
            self._stop_timer()
        self.aborted_by = user if answer == ABORT else None
        await self._log_line(f"::gate:: {answer} (by {user})\n".encode())
        await self._publish(lambda deploy: GateAnswered(deploy, gate.question, answer, user))
        self._give(answer)  # after the announcement, so the thread tells it before the next step

    async def _expire(self, gate: OpenGate) -> None:
        await asyncio.sleep(self.timeout_seconds)

        async def answer_abort(session: AsyncSession) -> None:
            if await sql.answer(session, self.deploy_id, ABORT, TIMEOUT, asked_at=gate.asked_at):
                await audit.record(
                    session, actor=BOT, action="gate", environment=self.environment,
                    deploy_id=self.deploy_id, detail=f"{ABORT} ({TIMEOUT}): {gate.question}",
                )  # fmt: skip

        with contextlib.suppress(Exception):  # not ours any more, or the bot stops
            await self._write("answering the gate: timeout", answer_abort)
            self.check()

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None
