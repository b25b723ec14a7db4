stack "demo" {
  app_image = "demo/app"
}

service "web" "web" {}

waive "audit.A007" {
  reason = "Grafana is not packaged by Debian; this stack runs only Debian-built images."
}

waive "audit.A007" {
  reason = "No dashboards on staging."
}

environment "staging" {
  domain = "staging.demo.example"
}
