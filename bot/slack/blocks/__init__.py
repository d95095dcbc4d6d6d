"""Block Kit for everything the bot shows in Slack: pure functions from rows and config to dicts,
one module per surface (card, thread, modals, history, home, messages) on top of the text
(mrkdwn), element (elements) and log (logs) pieces they share.

Nothing here does I/O or asks the service; callers pass everything in. Every output stays inside
Slack's limits whatever the input (a 1 MB log line, 10,000 lines of output, a 2,000-character
description), and everything a user or a script wrote is escaped for mrkdwn, so a branch or a log
line can neither mention @channel nor break the layout. tests/blockkit.py checks the outputs.
Import the module you need (`from bot.slack.blocks import card`); this package re-exports nothing.
"""
