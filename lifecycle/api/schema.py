"""OpenAPI details drf-spectacular cannot infer by itself."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "lifecycle.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "lc_<prefix>_<secret>",
                "description": "The store's API key: Authorization: Bearer lc_…"}


def canonical_paths(endpoints, **kwargs):
    """Routes accept an optional trailing slash; publish them without it."""
    return [(path.rstrip("/") if path != "/" else path, regex, method, callback)
            for path, regex, method, callback in endpoints]
