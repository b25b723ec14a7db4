stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

service "web" "web" {
  replicas = 3
}

environment "staging" {
  domain = "staging.demo.example"
}
