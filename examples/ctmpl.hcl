# A consul-template style config: run `ctmpl -config examples/ctmpl.hcl`.
consul {
  address = "127.0.0.1:8500"
  retry {
    attempts    = 0      # 0 = retry forever, keeping the last good files
    backoff     = "250ms"
    max_backoff = "1m"
  }
}

wait {
  min = "2s"
  max = "10s"
}

proxy = "nginx"
nginx {
  config   = "/etc/nginx/nginx.conf"
  pid_file = "/run/nginx.pid"
}

vars {
  tag    = "calico"
  domain = "example.com"
}

template {
  source      = "/etc/ctmpl/nginx.conf.j2"
  destination = "/etc/nginx/conf.d/upstreams.conf"
  perms       = 0644
  backup      = true   # also dest.bak: fine for conf.d/*.conf, not for include conf.d/*;
}
