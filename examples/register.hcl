catalog = "etcd://127.0.0.1:2379/services"

register {
  service      = "web"
  address      = "127.0.0.1:8080"
  tags         = ["calico"]
  meta { version = "1" }
  check        = "http:/health"
  check_status = "200-399"
  interval     = "5s"
  timeout      = "3s"
  rise         = 2
  fall         = 2
  ttl          = "15s"
}
