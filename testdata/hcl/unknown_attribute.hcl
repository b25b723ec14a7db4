stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {
  replcas = 2
}

environment "staging" {
  domain = "staging.demo.example"
}
