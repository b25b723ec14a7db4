stack "demo" {
  app_image = "demo/app"
  version   = var.app_version
}

variable "app_version" {
  type    = string
  default = "latest"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.app_version))
    error_message = "The app_version must be a semantic version such as 1.4.2."
  }
}

service "web" "web" {}

environment "staging" {
  domain = "staging.demo.example"
}
