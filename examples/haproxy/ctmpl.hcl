# ctmpl driving HAProxy 2.6+ (Debian's haproxy package): one backend per service tagged
# "calico", server changes applied through the runtime API, everything else one checked
# reload through the master CLI. Run: ctmpl -config /etc/ctmpl/haproxy.hcl
consul {
  address = "127.0.0.1:8500"
}

wait {
  min = "2s"
  max = "10s"
}

proxy = "haproxy"
haproxy {
  binary         = "haproxy"
  config         = ["/etc/haproxy/haproxy.cfg"]       # every -f, in order (files or dirs)
  master_socket  = "/run/haproxy-master.sock"         # haproxy -S; Debian's unit uses it too
  admin_socket   = "/run/haproxy/admin.sock"          # = the template's stats socket
  pid_file       = "/run/haproxy.pid"
  reload_timeout = "10s"
  runtime_api    = true                                # false: every change is a reload
}

vars {
  tag          = "calico"
  domain       = "example.com"
  bind         = "*:80"
  admin_socket = "/run/haproxy/admin.sock"             # rendered as: stats socket … level admin
  state_file   = "/var/lib/haproxy/server-state"       # rendered as: server-state-file …
}

template {
  source      = "/etc/ctmpl/haproxy.cfg.j2"            # templates/haproxy.cfg.j2
  destination = "/etc/haproxy/haproxy.cfg"
  perms       = 0644
}
