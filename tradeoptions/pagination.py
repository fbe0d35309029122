"""The API's page-number pagination, with `?page=` (given, but blank) refused like any other
page that does not exist, instead of silently meaning page 1: the schema says `page` is an
integer, and a blank value is a client bug worth hearing about."""

from functools import partial

from django.core.paginator import Paginator
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response


class PageNumbers(PageNumberPagination):
    def paginate_queryset(self, queryset, request, view=None):
        if request.query_params.get(self.page_query_param) == "":
            raise NotFound("Invalid page: give a page number or leave `page` out.")
        return super().paginate_queryset(queryset, request, view)


class _Counted(Paginator):
    """Told how many rows there are: the caller counted them already (with its totals, say)."""

    def __init__(self, object_list, per_page, *, count: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.count = count  # in place of the cached COUNT(*) query


class SizedPages(PageNumbers):
    """Pages whose size the client picks (`?page_size=`, 1 to `max_page_size`), answered with
    where they sit: the total `count`, this `page`, the number of `pages`, the `page_size`. A size
    out of range is a 400 on `page_size`, not silently another size (DRF's way). A caller that has
    counted the rows already passes `count`, and no COUNT query is made."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None, *, count: int | None = None):
        if count is not None:
            self.django_paginator_class = partial(_Counted, count=count)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not given.isdigit() or not 1 <= int(given) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [
                f"Show 1 to {self.max_page_size} rows a page."]})
        return int(given)

    def get_paginated_response(self, data):
        return Response({
            "count": self.page.paginator.count, "page": self.page.number, "pages": self.page.paginator.num_pages,
            "page_size": self.page.paginator.per_page, "next": self.get_next_link(),
            "previous": self.get_previous_link(), "results": data,
        })
