stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {
  replicas = "four"
}

environment "staging" {
  domain = "staging.demo.example"
}
