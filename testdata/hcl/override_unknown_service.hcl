stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

environment "staging" {
  domain = "staging.demo.example"

  service "wbe" {
    replicas = 2
  }
}
