stack "demo" {
  app_image = "demo/app"
}

servise "web" "web" {}

environment "staging" {
  domain = "staging.demo.example"
}
