#!/usr/bin/env bash
# Install what the tests need, then lint, type-check and run the test suite.
#   - a virtual environment in .venv with ctmpl and its test dependencies;
#   - Debian's etcd-server, nginx-light, haproxy, systemd (for systemd-analyze),
#     golang-1.19-go (the reference text/template) and zookeeper when missing (needs root
#     or sudo);
#   - then: ruff check, mypy --strict on the package, pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k consul -x
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# systemd-analyze verifies the shipped unit (contrib/systemd/ctmpl.service).
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# Go 1.19's text/template (consul-template 0.19.4's) checks the .ctmpl engine differentially.
[ -x /usr/lib/go-1.19/bin/go ] || need+=(golang-1.19-go)
# ZooKeeper's server jar and java for the zk:// catalog tests (they start it themselves).
[ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 || need+=(zookeeper)
# dnsmasq serves the DNS catalog's tests (dnsmasq-base: the binary, no system service).
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${need[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
    # The packages start system services; the tests run their own instances.
    for svc in etcd nginx haproxy; do
        $sudo systemctl stop "$svc" >/dev/null 2>&1 || $sudo service "$svc" stop >/dev/null 2>&1 || true
    done
fi
export PATH="$PATH:/usr/sbin:/sbin"

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check ctmpl tests bench
.venv/bin/mypy ctmpl
# Every tool above is installed now: a test that would skip for a missing one fails instead.
export CTMPL_REQUIRE_TOOLS=1
.venv/bin/pytest -q "$@"
