stack "demo" {
  app_image = "demo/app"
}

secret "pg" {}

service "web" "web" {}

service "postgres" "db" {
  superuser_password = secret.pg
}

environment "staging" {
  domain = "staging.demo.example"
}
