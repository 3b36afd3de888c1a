#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, installing and starting one if needed.
#
# Idempotent: does nothing when `docker info` already answers. Otherwise installs Debian's docker.io and
# debootstrap (the offline base image needs it) when missing, starts dockerd in its own session so it
# outlives this script, and waits until the engine answers. Exits non-zero with the daemon log's tail
# when it does not come up.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT_S=${DOCKER_ENGINE_WAIT_S:-60}

engine_answers() {
    docker info >/dev/null 2>&1
}

if command -v docker >/dev/null 2>&1 && engine_answers; then
    echo "docker-engine: an engine already answers ($(docker info --format '{{.ServerVersion}}'))"
    exit 0
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "docker-engine: ${missing[*]} missing and not root; install them or start an engine" >&2
        exit 1
    fi
    echo "docker-engine: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "docker-engine: no engine answers and dockerd needs root to start" >&2
        exit 1
    fi
    echo "docker-engine: starting dockerd (log: $DOCKERD_LOG)"
    # setsid: the daemon must survive this script and the CI step that ran it.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
fi

for _ in $(seq "$WAIT_S"); do
    if engine_answers; then
        echo "docker-engine: engine answers ($(docker info --format '{{.ServerVersion}}'))"
        exit 0
    fi
    sleep 1
done

echo "docker-engine: no engine answered within ${WAIT_S}s; last lines of $DOCKERD_LOG:" >&2
tail -n 30 "$DOCKERD_LOG" >&2 || true
exit 1
