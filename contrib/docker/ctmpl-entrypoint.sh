#!/bin/sh
# Container entrypoint: ctmpl renders every *.conf template of $CTMPL_TEMPLATES into nginx's
# conf.d, then runs nginx in the foreground as its exec child. ctmpl is PID 1: it reaps
# orphans, checks (nginx -t) before every reload, forwards SIGUSR1/SIGUSR2/SIGWINCH to
# nginx, and on SIGTERM/SIGINT/SIGQUIT stops nginx gracefully (SIGQUIT) and exits 0.
#
# Settings (environment; defaults suit the official nginx image):
#   CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN[_FILE], …  how to reach Consul (read by ctmpl)
#   CTMPL_CATALOG      consul (default), etcd://host:2379/prefix, dns://[resolver], file:///path/catalog.yaml
#   CTMPL_TEMPLATES    template directory, mounted whole (default /etc/ctmpl/templates);
#                      NAME.conf.j2 / NAME.conf.tmpl / NAME.conf.ctmpl → $CTMPL_OUTPUT_DIR/NAME.conf
#   CTMPL_OUTPUT_DIR   where rendered files go (default /etc/nginx/conf.d)
#   CTMPL_CONFIG       extra ctmpl config file or directory, read when it exists
#                      (default /etc/ctmpl/config.d)
#   CTMPL_WAIT         quiescence min:max (default 2s:10s)
#   CTMPL_STATUS_ADDR  host:port for /health and /metrics (default: off)
#   NGINX_BIN, NGINX_CONF, NGINX_PID   nginx binary, main config, pid file
#   CTMPL_BIN          the ctmpl program (default /opt/ctmpl/bin/ctmpl)
# Arguments are passed on to ctmpl, e.g. `-var domain=example.org -log-level debug`.
set -eu

templates=${CTMPL_TEMPLATES:-/etc/ctmpl/templates}
output=${CTMPL_OUTPUT_DIR:-/etc/nginx/conf.d}
config=${CTMPL_CONFIG:-/etc/ctmpl/config.d}
nginx_bin=${NGINX_BIN:-nginx}
nginx_conf=${NGINX_CONF:-/etc/nginx/nginx.conf}
nginx_pid=${NGINX_PID:-/var/run/nginx.pid}
ctmpl=${CTMPL_BIN:-/opt/ctmpl/bin/ctmpl}

set -- -catalog "${CTMPL_CATALOG:-consul}" -wait "${CTMPL_WAIT:-2s:10s}" "$@"
if [ -e "$config" ]; then
    set -- -config "$config" "$@"
fi
if [ -n "${CTMPL_STATUS_ADDR:-}" ]; then
    set -- -status-addr "$CTMPL_STATUS_ADDR" "$@"
fi

found=0
dests=" "
for src in "$templates"/*.conf.j2 "$templates"/*.conf.tmpl "$templates"/*.conf.ctmpl; do
    [ -f "$src" ] || continue
    name=$(basename "$src")
    dest="$output/${name%.*}"
    case "$dests" in
        *" $dest "*)
            echo "ctmpl-entrypoint: two templates in $templates render $dest:" \
                 "keep one of ${name%.*}.j2, .tmpl, .ctmpl" >&2
            exit 2 ;;
    esac
    dests="$dests$dest "
    set -- -template "$src:$dest" "$@"
    found=1
done
if [ "$found" = 0 ] && [ ! -e "$config" ]; then
    echo "ctmpl-entrypoint: no NAME.conf.j2 (or .tmpl, .ctmpl) template in $templates" \
         "and no $config: mount a template directory there (-v ./templates:$templates)" >&2
    exit 2
fi

exec "$ctmpl" -proxy nginx -nginx-bin "$nginx_bin" -nginx-conf "$nginx_conf" \
    -nginx-pid "$nginx_pid" \
    -exec "$nginx_bin -c $nginx_conf -g 'daemon off;'" \
    -exec-kill-signal SIGQUIT -exec-kill-timeout 8s \
    "$@"
