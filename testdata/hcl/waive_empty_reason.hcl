stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

waive "audit.A007" {
  reason = "   "
}

environment "staging" {
  domain = "staging.demo.example"
}
