"""The API's page-number pagination, with `?page=` (given, but blank) refused like any other
page that does not exist, instead of silently meaning page 1: the schema says `page` is an
integer, and a blank value is a client bug worth hearing about."""

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination


class PageNumbers(PageNumberPagination):
    def paginate_queryset(self, queryset, request, view=None):
        if request.query_params.get(self.page_query_param) == "":
            raise NotFound("Invalid page: give a page number or leave `page` out.")
        return super().paginate_queryset(queryset, request, view)
