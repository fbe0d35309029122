"""Content-Security-Policy on every HTML page: scripts and styles only from our own origin, no
inline script anywhere. Data reaches the pages' scripts through `data-` attributes and
`json_script` tags (which are JSON, not script, and are never executed).

The admin gets the same policy except that it may use inline `style` attributes (a few of its
templates do). The Swagger page at /api/docs/ is a page like the others: its UI comes from our own
static files and starts from a script file (`tradeoptions.api_docs`).
Responses that are not pages (the API's JSON, CSV exports) get a policy that allows nothing.
"""

POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
ADMIN_POLICY = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
# Everything that is not a page (API JSON, CSV exports): nothing in it may ever run or be framed,
# should a browser be tricked into rendering it.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def policy_for(path: str) -> str:
    if path.startswith("/admin/"):
        return ADMIN_POLICY
    return POLICY


class ContentSecurityPolicyMiddleware:
    HEADER = "Content-Security-Policy"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = policy_for(request.path)
        if self.HEADER not in response:
            is_page = response.get("Content-Type", "").startswith("text/html")
            response[self.HEADER] = policy if is_page else DATA_POLICY
        return response
