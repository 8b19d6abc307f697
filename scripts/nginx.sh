#!/bin/sh
# nginx.sh - check the nginx config, then reload the running master or cold-start nginx.
#
# For "-template src:dest:scripts/nginx.sh" and as the reload hook of nginx images. It makes
# the same decision as ctmpl's built-in nginx controller:
#
#   1. "nginx -t" must accept the config. If not: print nginx's message, put back the
#      files listed in $CTMPL_ROLLBACK (see below), exit 1, and leave the running nginx
#      alone.
#   2. If the pid file is non-empty and names a live nginx master (a running, non-zombie
#      process titled "nginx: master process"), reload it with "nginx -s reload", or with
#      "kill -HUP" when that fails while the master is still alive.
#   3. If both fail, or no master is alive (no pid file, empty file, dead or reused pid),
#      remove the stale pid file, start nginx and wait until the pid file names a master.
#
# Environment (default in brackets):
#   NGINX_BIN      nginx binary                                     [nginx]
#   NGINX_CONF     main config, passed as -c                        [/etc/nginx/nginx.conf]
#   NGINX_PID      pid file, as the config's "pid" directive names it [/run/nginx.pid]
#   NGINX_PREFIX   passed as -p when non-empty                      []
#   NGINX_GLOBALS  passed as -g when non-empty, e.g. "user www;"    []
#   NGINX_TIMEOUT  whole seconds to wait for a started master       [10]
#   CTMPL_ROLLBACK set by ctmpl for template commands: a manifest with one
#                  "destination<TAB>previous-copy" line per file installed in the pass
#                  (empty copy: the file is new). When nginx -t fails, each destination
#                  gets its previous bytes back (mode and owner kept) or is removed.
#
# Exit status: 0 reloaded or started; 1 config invalid; 2 nginx could not be started;
# 64 bad environment.
#
# A started nginx inherits this script's stderr: when the config logs to stderr, a caller
# that reads the script's output through a pipe sees no end-of-file while nginx runs.
# Workers orphaned by a master killed with SIGKILL are not cleaned up here (ctmpl's
# built-in controller does that); they make the cold start fail with "Address in use".

set -eu

NGINX_BIN=${NGINX_BIN:-nginx}
NGINX_CONF=${NGINX_CONF:-/etc/nginx/nginx.conf}
NGINX_PID=${NGINX_PID:-/run/nginx.pid}
NGINX_PREFIX=${NGINX_PREFIX:-}
NGINX_GLOBALS=${NGINX_GLOBALS:-}
NGINX_TIMEOUT=${NGINX_TIMEOUT:-10}

say() {
    printf 'nginx.sh: %s\n' "$*" >&2
}

case $NGINX_TIMEOUT in
    '' | *[!0-9]*)
        say "NGINX_TIMEOUT must be whole seconds, got '$NGINX_TIMEOUT'"
        exit 64
        ;;
esac

# run_nginx ARGS...: nginx with the configured -p, -c and -g, then ARGS.
run_nginx() {
    set -- -c "$NGINX_CONF" "$@"
    if [ -n "$NGINX_PREFIX" ]; then
        set -- -p "$NGINX_PREFIX" "$@"
    fi
    if [ -n "$NGINX_GLOBALS" ]; then
        set -- -g "$NGINX_GLOBALS" "$@"
    fi
    "$NGINX_BIN" "$@"
}

# read_pid: the pid file's content without blanks ("" when missing or unreadable).
read_pid() {
    if [ -r "$NGINX_PID" ]; then
        tr -d ' \t\r\n' <"$NGINX_PID" 2>/dev/null || true
    fi
}

# is_master PID: true when PID is a live, non-zombie nginx master.
is_master() {
    case $1 in
        '' | *[!0-9]* | 0) return 1 ;;
    esac
    # A zombie has an empty /proc cmdline, and ps shows it as "[nginx] <defunct>".
    if [ -r "/proc/$1/cmdline" ]; then
        title=$(tr '\000' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    else
        title=$(ps -o args= -p "$1" 2>/dev/null) || return 1
    fi
    case $title in
        'nginx: master process'*) return 0 ;;
        *) return 1 ;;
    esac
}

# wait_master: wait up to NGINX_TIMEOUT seconds for the pid file to name a live master.
wait_master() {
    if sleep 0.1 2>/dev/null; then
        step=1 # tenths of a second per try
    else
        step=10 # this sleep only takes whole seconds
    fi
    left=$((NGINX_TIMEOUT * 10))
    while ! is_master "$(read_pid)"; do
        if [ "$left" -le 0 ]; then
            return 1
        fi
        if [ "$step" -eq 1 ]; then sleep 0.1; else sleep 1; fi
        left=$((left - step))
    done
}

cold_start() {
    stale=$(read_pid)
    # "nginx -t" itself leaves an empty pid file behind when there was none.
    if [ -n "$stale" ]; then
        say "removing stale pid file $NGINX_PID (pid '$stale')"
    fi
    rm -f "$NGINX_PID"
    if ! run_nginx </dev/null >/dev/null; then
        say "nginx failed to start with $NGINX_CONF"
        exit 2
    fi
    if ! wait_master; then
        say "no live nginx master in $NGINX_PID after ${NGINX_TIMEOUT}s"
        exit 2
    fi
    say "started nginx (master $(read_pid))"
}

# restore_one DEST COPY: put COPY's bytes back at DEST (remove DEST when COPY is empty).
restore_one() {
    if [ -z "$2" ]; then
        rm -f "$1" && say "removed $1 (it is new and nginx rejects it)"
        return
    fi
    tmp="$(dirname "$1")/.$(basename "$1").restore.$$"
    # cp -p keeps the live file's mode and owner; the bytes then come from the copy.
    if cp -p "$1" "$tmp" 2>/dev/null && cat "$2" >"$tmp" && mv -f "$tmp" "$1" 2>/dev/null; then
        say "restored $1"
    elif cat "$2" >"$1"; then
        # rename is refused on a single-file bind mount: write in place.
        say "restored $1 (in place)"
    else
        say "cannot restore $1"
    fi
    rm -f "$tmp"
}

# restore_all: every file of the manifest in $CTMPL_ROLLBACK.
restore_all() {
    if [ -z "${CTMPL_ROLLBACK:-}" ] || [ ! -r "$CTMPL_ROLLBACK" ]; then
        return
    fi
    tab=$(printf '\t')
    while IFS="$tab" read -r dest copy; do
        if [ -n "$dest" ]; then
            restore_one "$dest" "$copy"
        fi
    done <"$CTMPL_ROLLBACK"
}

if ! out=$(run_nginx -t 2>&1 </dev/null); then
    printf '%s\n' "$out" >&2
    restore_all
    say "config $NGINX_CONF is invalid, nginx left as it was"
    exit 1
fi

pid=$(read_pid)
if is_master "$pid"; then
    if out=$(run_nginx -s reload 2>&1 </dev/null); then
        say "reloaded nginx (master $pid)"
        exit 0
    fi
    printf '%s\n' "$out" >&2
    # "nginx -s" signals the pid file the config names; NGINX_PID may name another one.
    if is_master "$pid" && kill -HUP "$pid" 2>/dev/null; then
        say "reloaded nginx with SIGHUP (master $pid)"
        exit 0
    fi
    say "reload of master $pid failed, starting nginx"
fi
cold_start
