#!/bin/sh
# What the benchmarks need beyond the virtualenv: wrk (P4's load generator),
# nginx (P5's baseline) and curl (P5's client), from the distribution's
# packages. Idempotent: installs only what is missing. Without them the
# benchmarks fall back to slower stand-ins (an httpx load client, a sendfile
# server) and say so in the table.
set -eu
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if command -v apt-get >/dev/null 2>&1; then
    echo "bench/setup.sh: installing$missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
else
    echo "bench/setup.sh: please install$missing (no apt-get here); falling back meanwhile" >&2
fi
