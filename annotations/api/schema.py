"""OpenAPI post-processing: document the error answers every operation can give.

drf-spectacular documents only the success responses. Clients generated from the schema (and
schemathesis' status_code_conformance check) then treat a 401, a 404 for an object outside your
projects, or a 429 from the throttle as a protocol error. The errors are the same everywhere,
so they are added here once instead of on each view.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.hooks import postprocess_schema_enums

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_SCHEMA = {
    "type": "object",
    "description": "DRF error body: {'detail': ...} or field -> list of messages.",
    "additionalProperties": True,
}
_COMMON = {
    "400": "invalid parameters or body",
    "401": "not logged in (send a token or a session cookie)",
    "403": "your role does not allow this (or a missing CSRF token)",
    "404": "no such object among the projects you can see",
    "405": "method not allowed",
    "429": "too many requests (throttled)",
}
_PUBLIC = {"400", "405", "429"}  # the token login and the schema itself need no login


def add_error_responses(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOK: the errors above on every operation."""
    result = postprocess_schema_enums(result, generator, request=request, public=public)
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            is_public = {} in operation.get("security", []) and len(operation["security"]) == 1
            for code, description in _COMMON.items():
                if is_public and code not in _PUBLIC:
                    continue
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": _ERROR}},
                    },
                )
    return result


ERROR_RESPONSES_HOOK = f"{__name__}.add_error_responses"  # spectacular takes dotted paths


class ExpiringTokenScheme(OpenApiAuthenticationExtension):
    """Documents annotations.tokens.ExpiringTokenAuthentication (knox keys) in the schema."""

    target_class = "annotations.tokens.ExpiringTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A key from POST /api/auth/token/, sent as "Token <key>".',
        }
