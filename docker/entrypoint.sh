#!/bin/sh
# The container's command (under tini): `softswitch serve` on the addresses of the environment (docker/Dockerfile
# lists the variables; the media ones are read by the switch's config loader itself).  Extra arguments that are
# options go to `softswitch serve` (e.g. `--workers 4`); any other command runs as given (e.g. `softswitch --help`).
set -eu
case "${1:-}" in
    "" | -*)
        set -- --http "${SOFTSWITCH_HTTP:-0.0.0.0:8080}" --sip "${SOFTSWITCH_SIP:-0.0.0.0:5060}" \
            --data-dir "${SOFTSWITCH_DATA_DIR:-/var/lib/softswitch}" \
            ${SOFTSWITCH_CONFIG:+--config "$SOFTSWITCH_CONFIG"} "$@"
        exec softswitch serve "$@"
        ;;
esac
exec "$@"
