# nginx with ctmpl as PID 1: ctmpl renders the templates mounted in /etc/ctmpl/templates,
# checks them with nginx -t, and supervises nginx (in the foreground) as its exec child.
#   docker build -t ctmpl-nginx .
#   docker run -e CONSUL_HTTP_ADDR=consul:8500 -v "$PWD/templates:/etc/ctmpl/templates" \
#       -p 80:80 ctmpl-nginx
# See the README, "Docker sidecar", for the settings and signals.
FROM nginx:1.27-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /opt/ctmpl-src/
COPY ctmpl /opt/ctmpl-src/ctmpl
RUN python3 -m venv /opt/ctmpl \
    && /opt/ctmpl/bin/pip install --no-cache-dir /opt/ctmpl-src \
    && rm -rf /opt/ctmpl-src

COPY templates/nginx.conf.j2 /etc/ctmpl/templates/upstreams.conf.j2
COPY contrib/docker/ctmpl-entrypoint.sh /usr/local/bin/ctmpl-entrypoint

ENV CONSUL_HTTP_ADDR=127.0.0.1:8500
# ctmpl stops gracefully on SIGTERM, SIGINT and SIGQUIT; nginx then gets SIGQUIT.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ctmpl-entrypoint"]
CMD []
