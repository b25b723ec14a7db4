stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

service "nginx" "nginx" {
  upstream = service.webb
}

environment "staging" {
  domain = "staging.demo.example"
}
