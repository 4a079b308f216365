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


def server_rules(result, generator, request, public):
    """What the server enforces beyond each field's own type, said in the published schema:

    - a customer is named by a non-empty external_id or an email (CustomerIn's model validator);
    - a path value is at most 255 characters (the longest id any object has; longer names nothing).
    """
    customer = result.get("components", {}).get("schemas", {}).get("CustomerIn")
    if customer is not None:
        customer["anyOf"] = [
            {"required": ["external_id"], "properties": {"external_id": {"type": "string", "minLength": 1}}},
            {"required": ["email"], "properties": {"email": {"type": "string"}}},
        ]
        customer["description"] = "A customer needs an `external_id` or an `email` (or both)."
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("schema", {}).get("type") == "string":
                    parameter["schema"].setdefault("maxLength", 255)
    return result
