#!/usr/bin/env bash
# Creates the virtual environment and, when running as root, installs the
# Debian tools the tests and benchmarks use. Safe to run again.
set -euo pipefail
venv=${1:-.venv}

debian_packages=(iproute2 iptables nftables conntrack etcd-server etcd-client
                 dnsutils curl haproxy dnsperf wrk)
# Debian package → a command it provides, to tell whether it is present.
declare -A probe=([iproute2]=ip [iptables]=iptables [nftables]=nft [conntrack]=conntrack
                  [etcd-server]=etcd [etcd-client]=etcdctl [dnsutils]=dig [curl]=curl
                  [haproxy]=haproxy [dnsperf]=dnsperf [wrk]=wrk)

missing=()
for pkg in "${debian_packages[@]}"; do
    command -v "${probe[$pkg]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${probe[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: not root; tests needing these tools will skip: ${missing[*]}" >&2
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test]'
