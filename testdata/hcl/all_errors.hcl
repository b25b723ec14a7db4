stack "demo" {
  app_image = "demo/app"
  version   = var.missing
}

service "web" "web" {
  replcas = 2
}

service "web" "web" {}

service "nginx" "nginx" {
  upstream = service.nowhere
  http_port = "eighty"
}

bogus {}

environment "staging" {
  domain = "staging.demo.example"
}
