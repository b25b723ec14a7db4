"""Content-Security-Policy from the CSP_* settings (no django-csp here)."""
from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = "; ".join(
            [
                f"default-src {settings.CSP_DEFAULT_SRC}",
                f"script-src {settings.CSP_SCRIPT_SRC}",
                f"style-src {settings.CSP_STYLE_SRC}",
            ]
        )

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.policy)
        return response
