#!/usr/bin/env bash
# Known bytes, slowly, for the REST log-follow test: Chinese and an emoji, each cut in two by a
# pause longer than the bot's one-second log flush, so a stored chunk ends inside a character.
set -eu
pause="${PAUSE_SECONDS:-1.3}"
printf '[1/2] start 部署开始\n'
printf 'half a character: \xe4\xb8'
sleep "$pause"
printf '\xad, done\n'
printf '[2/2] emoji \xf0\x9f\x9a'
sleep "$pause"
printf '\x80 launched\n'
printf 'end without newline'
