from django.contrib import admin

from tradeoptions.admin import ReadOnlyAdmin

from .models import PriceSnapshot


@admin.register(PriceSnapshot)
class PriceSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "trade", "owner", "kind", "mark_price", "bid", "ask", "source", "quote_time"]
    list_filter = ["kind", "source"]
    list_select_related = ["trade", "owner"]
    date_hierarchy = "timestamp"
    show_full_result_count = False  # millions of rows: no COUNT(*) on every page
