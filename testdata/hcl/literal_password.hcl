stack "demo" {
  app_image = "demo/app"
}

service "postgres" "db" {
  superuser_password = "hunter2"
}

environment "staging" {
  domain = "staging.demo.example"
}
