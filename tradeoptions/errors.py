"""Error pages for requests no view answered. Under `/api/` the answer is the API's one error
shape in JSON (a client parsing `{"type", "errors"}` must not get an HTML page for a mistyped
id); everywhere else Django's own pages."""

from django.http import JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def not_found(request, exception=None):
    if request.path.startswith(API_PREFIX):
        body = {"type": "client_error", "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}]}
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)
