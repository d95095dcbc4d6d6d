"""The `deploybot` command (also `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys

from bot.config import ConfigError, load_config
from bot.errors import DeployError
from bot.i18n import t
from bot.slack.grammar import RESERVED_WORDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploybot", description="Slack chat-ops deploy bot")
    _global_options(parser, suppress=False)
    # The same options after the verb (`deploybot serve --config X`); SUPPRESS keeps a value given
    # before the verb when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    commands = parser.add_subparsers(dest="command", required=True)
    add_parser = functools.partial(commands.add_parser, parents=[common])

    serve = add_parser("serve", help="run the bot (Socket Mode with SLACK_APP_TOKEN, else HTTP)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--no-runner",
        action="store_true",
        help="serve Slack and REST without running deploy scripts (`deploybot worker`s run them)",
    )
    serve.add_argument(
        "--environments", default=None, help="run only these environments' scripts (comma-separated)"
    )

    worker = add_parser("worker", help="claim and run deploys, without serving Slack or REST")
    worker.add_argument(
        "--environments", default=None, help="comma-separated environments to run (default: all)"
    )
    worker.add_argument("--host", default="127.0.0.1", help="where --port listens")
    worker.add_argument("--port", type=int, default=None, help="answer GET /metrics on this port")

    console = add_parser("console", help="the whole bot in a terminal, without Slack")
    console.add_argument(
        "--user", default=None, help="Slack user id or name to act as (default: first admin)"
    )
    console.add_argument("--script", help="read commands from this file instead of stdin")
    console.add_argument("--no-color", action="store_true")

    db = add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])

    add_parser("cleanup", help="run the retention job once and print what it changed")

    deploy = add_parser("deploy", help="run one deploy here and stream its log")
    deploy.add_argument("environment")
    deploy.add_argument("branch", nargs="?")
    deploy.add_argument("--user", default="cli")
    deploy.add_argument("--description", default="")
    deploy.add_argument("--skip-build", action="store_true")
    deploy.add_argument("--skip-migrations", action="store_true")

    rollback = add_parser("rollback", help="roll back to an earlier successful deploy")
    rollback.add_argument("deploy_id", type=int)
    rollback.add_argument("--user", default="cli")
    rollback.add_argument("--reason", default="")
    return parser


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    keep = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument(
        "--config", **keep, help="TOML config (default $DEPLOYBOT_CONFIG or ./deploybot.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", **keep, help="debug logging")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config, reserved_words=RESERVED_WORDS, runs=_runs(args))
    except ConfigError as exc:
        print(f"deploybot: config error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, config))
    except KeyboardInterrupt:
        return 130
    except DeployError as exc:
        print(f"deploybot: {exc.message(config.locale)}", file=sys.stderr)
        return 1


def _runs(args: argparse.Namespace) -> list[str] | None:
    """The environments whose scripts this process runs; None: every one."""
    if args.command == "serve" and args.no_runner:
        return []
    if args.command in ("serve", "worker") and args.environments is not None:
        return [name for name in args.environments.split(",") if name.strip()] or [args.environments]
    if args.command == "cleanup":
        return []
    return None


async def _run(args: argparse.Namespace, config) -> int:
    from bot.app import cli

    match args.command:
        case "db":
            return await cli.db_upgrade(config)
        case "cleanup":
            return await cli.cleanup(config)
        case "deploy":
            return await cli.deploy(config, args)
        case "rollback":
            return await cli.rollback(config, args)
        case "serve":
            from bot.app.server import serve

            return await serve(config, args.host, args.port)
        case "worker":
            from bot.app.worker import work

            return await work(config, args.host, args.port)
        case "console":
            from bot.console.session import run_console

            return await run_console(config, args)
    print(t(config.locale, "error.generic"), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
