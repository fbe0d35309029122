from django.urls import path

from . import api

urlpatterns = [
    path("quote", api.QuoteView.as_view(), name="market-quote"),
    path("expirations", api.ExpirationsView.as_view(), name="market-expirations"),
    path("chain", api.ChainView.as_view(), name="market-chain"),
]
