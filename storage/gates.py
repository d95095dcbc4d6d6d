"""The SQL of gates (DESIGN §9): the question a running deploy's script waits at, and its answer.

The owner writes the question (`ask`, only while the deploy is its own), which also forgets the
previous gate's answer. Anyone may answer (`answer`): one conditional UPDATE on a running deploy
whose question is open and unanswered, so two clicks, two processes or a click racing the timeout
answer it once. The answer stays on the row until the next question replaces it, so a late click
can be told who answered.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Deploy, Status, db_now
from storage.repository import LeaseLost

CONTINUE = "continue"
ABORT = "abort"
ANSWERS = (CONTINUE, ABORT)


async def ask(session: AsyncSession, deploy_id: int, owner: str, question: str) -> datetime:
    """Open a gate on `owner`'s running deploy; returns when it was asked (the database's time),
    which names this gate from now on. LeaseLost when the deploy is no longer `owner`'s."""
    rows = await session.execute(
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.runner_id == owner, Deploy.status == Status.RUNNING.value)
        .values(
            gate_question=question,
            gate_asked_at=db_now(),
            gate_answer=None,
            gate_answered_by=None,
            updated_at=db_now(),
        )
        .returning(Deploy.gate_asked_at)
        .execution_options(synchronize_session=False)
    )
    asked_at = rows.scalar_one_or_none()
    if asked_at is None:
        raise LeaseLost(f"deploy #{deploy_id} is no longer {owner}'s")
    return asked_at


async def answer(
    session: AsyncSession, deploy_id: int, answer: str, user: str, *, asked_at: datetime | None = None
) -> bool:
    """Answer the open gate of a running deploy (the gate asked at `asked_at`, when given). False
    when there is none to answer: not running, no question, answered already, or another gate."""
    conditions = [
        Deploy.id == deploy_id,
        Deploy.status == Status.RUNNING.value,
        Deploy.gate_question.is_not(None),
        Deploy.gate_answer.is_(None),
    ]
    if asked_at is not None:
        conditions.append(Deploy.gate_asked_at == asked_at)
    result = await session.execute(
        update(Deploy)
        .where(*conditions)
        .values(gate_answer=answer, gate_answered_by=user[:255], updated_at=db_now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
