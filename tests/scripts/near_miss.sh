#!/usr/bin/env bash
# Output that comes close to secrets and token shapes without holding one, for the masking tests:
# it must be stored byte for byte. $NEAR is a prefix of the configured secret.
echo "[1/2] xox xoxb- xapp- AKIA1234 ghp_short github_pat_ glpat-x"
printf 'a line ending in a prefix of the secret: %s' "$NEAR"
sleep 0.2
printf '\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
printf '\xff\xfe \xe4\xb8\xad\xe6\x96\x87\n'
echo "[2/2] done"
printf 'last words then a partial token: xoxb'
