#!/usr/bin/env bash
# promtool (checks and unit-tests the Prometheus alert rules and config under deploy/prometheus/)
# from Debian's `prometheus` package. Does nothing when promtool is already on the PATH.
#
# The package also ships a Prometheus server that its maintainer scripts would start. CI has no
# systemd, so only a SysV init script could start it; a policy-rc.d that answers 101 ("action
# forbidden") for the length of the install keeps it stopped, and it is removed again unless it
# was already there.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "FATAL: promtool is missing and installing it needs root (apt-get install prometheus)" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Installing packages must not start their services.\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    created_policy=true
fi
remove_policy() {
    if [ "$created_policy" = true ]; then rm -f "$policy"; fi
}
trap remove_policy EXIT

echo "installing promtool (Debian package prometheus)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null

command -v promtool >/dev/null 2>&1 || {
    echo "FATAL: the prometheus package installed no promtool" >&2
    exit 1
}
promtool --version 2>&1 | head -n 1
