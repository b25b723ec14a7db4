stack "demo" {
  app_image = "demo/app"
}

secret "api_key" {}

service "web" "web" {
  env = {
    API_URL = "https://user:${secret.api_key}@api.example"
  }
}

environment "staging" {
  domain = "staging.demo.example"
}
