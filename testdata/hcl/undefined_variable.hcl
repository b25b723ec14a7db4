stack "demo" {
  app_image = "demo/app"
  version   = var.app_versoin
}

variable "app_version" {
  default = "1.0.0"
}

service "web" "web" {}

environment "staging" {
  domain = "staging.demo.example"
}
