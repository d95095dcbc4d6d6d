"""Masking secrets out of deploy output: the masker alone (token shapes, known secrets, reads split
anywhere, the hold-back and its release, PEM blocks), then real deploys through the service on both
databases: the stored log, the error message and the steps show `***`, never the secret."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.deploy.events import StepChanged
from bot.deploy.masking import HOLD_LIMIT, HOLD_SECONDS, PEM_LIMIT, SecretMasker
from bot.deploy.service import DeployService
from storage.db import Database
from storage.models import Status
from tests.conftest import ADMIN, SCRIPTS
from tests.engine.test_faults import running_service

SECRET = "s3cr3t-Value-42"
TOKENS = {
    "slack bot": "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack user": "xoxp-123456789012-1234567890123-1234567890123-0123456789abcdef",
    "slack app": "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "aws session": "ASIAY34FZKBOKMUTVV7A",
    "github": "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8",
    "github oauth": "gho_" + "Z" * 36,
    "github app": "ghs_" + "0123456789" * 3 + "abcdef",
    "github fine-grained": "github_pat_11ABCDEFG0123456789abcd_" + "x" * 59,
    "gitlab": "glpat-Ab3dEf6hIj9kLm2nOp5q",
}
PEM = (
    b"-----BEGIN RSA PRIVATE KEY-----\n"
    b"MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    b"aFDrBz9vFqU4yfP+ZlhQnQhQ2GqLcHsSGs3mJ3JgQxJQ9d1Kj5pWlhNwpPXcHjDq\n"
    b"-----END RSA PRIVATE KEY-----\n"
)


def masked(*reads: bytes, secrets=(SECRET,)) -> bytes:
    """What the masker lets out for these reads, up to the end of the stream."""
    masker = SecretMasker(secrets)
    return b"".join(masker.feed(read, now=0.0) for read in reads) + masker.flush()


# --- what is masked --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", TOKENS.values(), ids=TOKENS.keys())
def test_each_token_shape_is_masked(token):
    line = f"export TOKEN={token} # from the vault\n".encode()
    assert masked(line, secrets=()) == b"export TOKEN=*** # from the vault\n"


def test_a_known_secret_is_masked_wherever_it_is():
    data = f"{SECRET}\npassword={SECRET}; again:{SECRET}".encode()
    assert masked(data) == b"***\npassword=***; again:***"


def test_short_secrets_are_ignored():
    assert masked(b"an abcde here\n", secrets=("abcde",)) == b"an abcde here\n"


def test_overlapping_secrets_are_masked_as_one_and_adjacent_ones_each():
    secrets = ("abcdefgh", "efghijkl")
    assert masked(b"<abcdefghijkl>", secrets=secrets) == b"<***>"
    assert masked(b"<efghijklabcdefgh>", secrets=secrets) == b"<******>"
    assert masked(b"<abcdefghabcdefgh>", secrets=secrets) == b"<******>"


def test_a_pem_private_key_block_is_masked_whole():
    assert masked(b"key:\n" + PEM + b"done\n", secrets=()) == b"key:\n***\ndone\n"
    # a service account's JSON carries it on one line, with escaped newlines
    one_line = b'{"private_key": "' + PEM.replace(b"\n", b"\\n") + b'", "id": 7}\n'
    assert masked(one_line, secrets=()) == b'{"private_key": "***\\n", "id": 7}\n'


def test_a_pem_block_without_end_is_dropped_for_at_most_16_kib():
    body = b"A" * 63 + b"\n"
    data = b"-----BEGIN PRIVATE KEY-----\n" + body * 400 + b"after\n"
    out = masked(data, secrets=())
    assert out.startswith(b"***") and out.endswith(b"after\n")
    assert len(data) - len(out) + 3 == PEM_LIMIT


def test_clean_output_is_passed_through_as_the_same_object():
    masker = SecretMasker([SECRET, "another-secret-value"])
    for read in (b"INFO webpack: emitted assets/index.js 12.3 KiB\n", b"x" * 1_000_000 + b"\n", b"\n"):
        assert masker.feed(read, now=0.0) is read
    assert masker.flush() == b""
    near = b"xox AKIA123 ghp_x -----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert masked(near) == near


# --- reads split anywhere --------------------------------------------------------------------------


def split_everywhere(data: bytes, secrets=(SECRET,)) -> set[bytes]:
    return {masked(data[:cut], data[cut:], secrets=secrets) for cut in range(len(data) + 1)}


def test_a_secret_split_at_every_position_is_masked():
    assert split_everywhere(f"login {SECRET} ok\n".encode()) == {b"login *** ok\n"}


def test_a_token_split_at_every_position_is_masked():
    for token in TOKENS.values():
        assert split_everywhere(f"t={token};\n".encode(), ()) == {b"t=***;\n"}


def test_a_pem_block_split_at_every_position_is_masked():
    assert split_everywhere(b"k=" + PEM + b"end", ()) == {b"k=***\nend"}


PIECES = st.sampled_from([SECRET, *TOKENS.values(), "s3cr", "xox", "AKIA", "ghp_", "\n", "-", "_"])
TEXT = st.lists(st.one_of(PIECES, st.text("ab3xS-_\n ", max_size=8)), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=4))
def test_any_split_masks_as_a_single_read_does(text, cuts):
    data = text.encode()
    bounds = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    reads = [data[start:stop] for start, stop in zip(bounds, bounds[1:], strict=False)]
    whole = masked(data)
    assert masked(*reads) == whole
    assert SECRET.encode() not in whole
    assert not any(token.encode() in whole for token in TOKENS.values())


# --- holding back and letting go -------------------------------------------------------------------


def test_a_partial_secret_is_released_after_100_ms_and_its_rest_still_masked():
    masker = SecretMasker([SECRET])
    assert masker.due(0.0) is None
    assert masker.feed(b"line\nlogin s3cr", now=10.0) == b"line\nlogin "
    assert masker.due(10.04) == pytest.approx(HOLD_SECONDS - 0.04)
    assert masker.due(10.2) == 0
    assert masker.release() == b"s3cr"
    assert masker.due(10.2) is None
    assert masker.feed(b"3t-Value-42 ok\n", now=11.0) == b"*** ok\n"


def test_a_partial_token_is_released_masked_and_so_is_its_rest():
    masker = SecretMasker()
    assert masker.feed(b"key xoxb-1234567890ab", now=0.0) == b"key "
    assert masker.release() == b"***"
    assert masker.feed(b"cdef-99 done\n", now=1.0) == b"*** done\n"


def test_a_pem_block_is_dropped_not_held_however_slowly_it_comes():
    masker = SecretMasker()
    out = masker.feed(PEM[:50], now=0.0)
    assert out == b"***" and masker.due(0.0) is None
    assert masker.feed(PEM[50:-10], now=5.0) == b""
    assert masker.feed(PEM[-10:] + b"next\n", now=9.0) == b"\nnext\n"


def test_never_more_than_4_kib_is_held():
    masker = SecretMasker(["y" * 9000])  # a start of it may end any read
    assert masker.feed(b"start " + b"y" * 6000, now=0.0) == b"start " + b"y" * (6000 - HOLD_LIMIT)
    long_token = b"xoxb-" + b"1" * 1000
    assert masker.feed(long_token, now=0.0) == b"y" * HOLD_LIMIT
    assert masker.flush() == b"***"


# --- real deploys ----------------------------------------------------------------------------------


class started_service:
    """A DeployService whose config knows `secret` (as an API token) and whose scripts see `env`."""

    def __init__(self, make_config, script: str, secret: str, **env: str) -> None:
        environ = {"DEPLOYBOT_API_TOKENS": f"ci:{secret},other:another-token-value"}
        self.config = make_config(environments={"production": {"script": script}}, environ=environ)
        self.env = {**os.environ, **env}

    async def __aenter__(self) -> DeployService:
        self.db = Database(self.config.database_url)
        self.service = DeployService(self.config, self.db, base_env=self.env)
        await self.service.start()
        return self.service

    async def __aexit__(self, *exc) -> None:
        await self.service.close()
        await self.db.dispose()


async def test_a_leaking_script_stores_and_reports_only_masks(make_config):
    steps: list[StepChanged] = []
    async with started_service(make_config, str(SCRIPTS / "leak.sh"), SECRET, LEAK=SECRET) as service:
        service.events.subscribe(lambda event: isinstance(event, StepChanged) and steps.append(event))
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
        done = await service.get(deploy.id)
        log = (await service.logs(deploy.id)).data
    lines = [b"[1/2] log in with ***", b"token: ***", b"aws *** ******", b"[2/2] push as ***"]
    assert log == b"\n".join([*lines, b"ERROR: registry refused ***"])
    assert done.state is Status.FAILED and done.exit_code == 4
    assert done.error_message.endswith("ERROR: registry refused ***")
    assert [event.step.title for event in steps] == ["log in with ***", "push as ***"]
    assert done.step_title == "push as ***"
    assert steps[1].step.lines_before == ("token: ***", "aws *** ******")
    for text in (log.decode(), done.error_message, done.step_title, *steps[1].step.lines_before):
        assert SECRET not in text and SECRET[:8] not in text


async def test_a_clean_script_is_stored_byte_for_byte(make_config):
    env = {"NEAR": SECRET[:6]}
    bare = subprocess.run([str(SCRIPTS / "near_miss.sh")], env={**os.environ, **env}, capture_output=True)
    async with started_service(make_config, str(SCRIPTS / "near_miss.sh"), SECRET, **env) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
        done = await service.get(deploy.id)
        log = b"".join([piece async for piece in service.iter_log(deploy.id)])
    assert done.state is Status.SUCCESS
    assert log == bare.stdout
    assert log.endswith(b"partial token: xoxb")


async def test_a_quiet_script_s_held_back_output_is_stored_while_it_runs(make_config, tmp_path):
    path = tmp_path / "quiet.sh"
    path.write_text("#!/usr/bin/env bash\nprintf 'waiting on s3cr'\nsleep 2\necho ' done'\n")
    path.chmod(0o755)
    async with started_service(make_config, str(path), SECRET) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        async with asyncio.timeout(1.5):
            while b"waiting on s3cr" not in (await service.logs(deploy.id)).data:
                await asyncio.sleep(0.05)
        assert (await service.get(deploy.id)).state is Status.RUNNING
        await service.wait_idle()
        assert (await service.logs(deploy.id)).data == b"waiting on s3cr done\n"


async def test_a_secret_typed_into_a_description_is_stored_masked(make_config):
    config = make_config(environ={"SLACK_SIGNING_SECRET": "signing-secret-42"})
    async with running_service(config) as service:
        typed = "rotate signing-secret-42 and ghp_" + "a" * 36 + " today"
        deploy = await service.trigger("production", "main", user=ADMIN, description=typed)
        stored = (await service.get(deploy.id)).description
        assert "signing-secret-42" not in stored and "ghp_" + "a" * 36 not in stored
        assert stored.startswith("rotate ***") and stored.endswith(" today")
        await service.wait_idle()
