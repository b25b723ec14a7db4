stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

waive "audit.A007" {}

environment "staging" {
  domain = "staging.demo.example"
}
