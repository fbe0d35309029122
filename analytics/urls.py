from django.urls import path

from . import api

urlpatterns = [
    path("performance", api.PerformanceView.as_view(), name="analytics-performance"),
    path("calibration", api.CalibrationView.as_view(), name="analytics-calibration"),
    path("exit-replay", api.ExitReplayView.as_view(), name="analytics-exit-replay"),
    path("exit-policy-replay", api.ExitPolicyReplayView.as_view(), name="analytics-exit-policy-replay"),
    path("fill-quality", api.FillQualityView.as_view(), name="analytics-fill-quality"),
    path("dataset", api.DatasetView.as_view(), name="analytics-dataset"),
    path("trades/<int:trade_id>/forensics", api.ForensicsView.as_view(), name="analytics-forensics"),
]
