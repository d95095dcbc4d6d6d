"""Errors a user can cause. Each carries a catalogue key and its parameters, so the same refusal is
rendered in the user's language in Slack and mapped to an HTTP status by the REST API."""

from __future__ import annotations

from typing import Any

from bot.i18n import t


class DeployError(Exception):
    code = "deploy_error"
    key = "error.generic"

    def __init__(self, **params: Any) -> None:
        self.params = params
        super().__init__(self.message("en"))

    def message(self, locale: str) -> str:
        return t(locale, self.key, **self.params)


class InvalidInput(DeployError):
    code = "invalid_input"
    key = "error.invalid_input"


class UnknownEnvironment(DeployError):
    code = "unknown_environment"
    key = "error.unknown_environment"


class InvalidBranch(DeployError):
    code = "invalid_branch"
    key = "error.invalid_branch"


class UnknownBranch(DeployError):
    code = "unknown_branch"
    key = "error.unknown_branch"


class DescriptionTooLong(DeployError):
    code = "description_too_long"
    key = "error.description_too_long"


class EnvironmentBusy(DeployError):
    code = "environment_busy"
    key = "error.environment_busy"


class NoRunner(DeployError):
    """No live process runs the environment's scripts (DESIGN §12)."""

    code = "no_runner"
    key = "error.no_runner"


class DeployNotFound(DeployError):
    code = "deploy_not_found"
    key = "error.deploy_not_found"


class AlreadyFinished(DeployError):
    """Cancelling a deploy that has already ended."""

    code = "deploy_finished"
    key = "error.deploy_finished"


class RollbackNotEligible(DeployError):
    code = "rollback_not_eligible"
    key = "error.rollback_not_eligible"


class CommitMissing(DeployError):
    code = "commit_missing"
    key = "error.commit_missing"


class RepoUnavailable(DeployError):
    code = "repo_unavailable"
    key = "error.repo_unavailable"


class EnvironmentLocked(DeployError):
    code = "environment_locked"
    key = "error.environment_locked"


class NotLocked(DeployError):
    code = "not_locked"
    key = "error.not_locked"


class LockedByOther(DeployError):
    """Unlocking someone else's lock without being a manager."""

    code = "locked_by_other"
    key = "error.locked_by_other"


class QueueFull(DeployError):
    code = "queue_full"
    key = "error.queue_full"


class BranchNotAllowed(DeployError):
    code = "branch_not_allowed"
    key = "error.branch_not_allowed"


class NotPermitted(DeployError):
    """Not among those the config lets do this here (deployers, managers, approvers)."""

    code = "forbidden"
    key = "error.not_permitted"


class SelfApproval(DeployError):
    code = "self_approval"
    key = "error.self_approval"


class NotAwaitingApproval(DeployError):
    """Approving or rejecting a deploy that is not (or no longer) waiting for it."""

    code = "not_awaiting_approval"
    key = "error.not_awaiting_approval"


class GateAnswerInvalid(DeployError):
    """A gate is answered `continue` or `abort`, nothing else."""

    code = "invalid_gate_answer"
    key = "error.gate_answer_invalid"


class GateNotOpen(DeployError):
    """Answering a gate of a deploy that waits at none (not running, no question, another gate)."""

    code = "gate_not_open"
    key = "error.gate_not_open"


class GateAlreadyAnswered(GateNotOpen):
    """Answering a gate someone (or its timeout) answered already: a second click."""

    code = "gate_answered"
    key = "error.gate_answered"


class EnvironmentFrozen(DeployError):
    code = "environment_frozen"
    key = "error.environment_frozen"
