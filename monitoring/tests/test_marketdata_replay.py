"""Replaying a recorded CSV: answers as of the clock, never from the future; plus the factory
that switches sources by setting alone."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured

from monitoring.marketdata import UnsupportedRequest, provider_for
from monitoring.marketdata.orats import OratsProvider
from monitoring.marketdata.replay import ReplayDataError, ReplayProvider
from monitoring.marketdata.simulated import SimulatedProvider

NY = ZoneInfo("America/New_York")
RECORDING = """\
ticker,quoteDate,expirDate,strike,stockPrice,callBidPrice,callAskPrice,callValue,putBidPrice,putAskPrice,putValue,callMidIv,putMidIv,smvVol,delta,gamma,theta,vega
SPY,2026-06-17T13:31:00Z,2026-07-17,580,581.10,12.10,12.30,12.2,9.80,10.00,9.9,0.16,0.17,0.165,0.55,0.012,-0.18,0.66
SPY,2026-06-17T13:32:00Z,2026-07-17,580,582.40,12.90,13.10,13.0,9.20,9.40,9.3,0.16,0.17,0.165,0.58,0.012,-0.18,0.66
SPY,2026-06-17T13:47:00Z,2026-07-17,580,580.00,,,11.5,,,10.7,,,0.17,0.52,0.012,-0.18,0.66
VIX,2026-06-17T13:31:00Z,,,17.25,,,,,,,,,,,,,
VIX,2026-06-17T13:46:00Z,,,18.50,,,,,,,,,,,,,
"""


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "day.csv"
    path.write_text(RECORDING)
    return path


def at(hour, minute, second=0):
    return datetime(2026, 6, 17, hour, minute, second, tzinfo=NY)


def test_quotes_are_the_latest_row_at_or_before_now(recording):
    call, put = "SPY260717C00580000", "SPY260717P00580000"
    first = ReplayProvider(recording, clock=lambda: at(9, 31, 30)).option_quotes([call, put])
    assert first[call].bid == Decimal("12.1") and first[put].delta == Decimal("-0.45")
    assert first[call].quote_time == at(9, 31) and first[call].source == "replay"
    later = ReplayProvider(recording, clock=lambda: at(9, 40)).option_quotes([call])
    assert later[call].mark == Decimal("13") and later[call].underlying_price == Decimal("582.4")
    nulls = ReplayProvider(recording, clock=lambda: at(10, 0)).option_quotes([call])[call]
    assert nulls.bid is None and nulls.mark == Decimal("11.5") and nulls.iv == Decimal("0.17")


def test_nothing_before_the_first_row_and_unknown_contracts_are_left_out(recording):
    early = ReplayProvider(recording, clock=lambda: at(9, 30))
    assert early.option_quotes(["SPY260717C00580000"]) == {}
    assert ReplayProvider(recording, clock=lambda: at(10, 0)).option_quotes(["SPY260717C00585000"]) == {}


def test_underlyings_come_from_option_rows_and_underlying_only_rows(recording):
    quotes = ReplayProvider(recording, clock=lambda: at(9, 46, 30)).underlying_quotes(["spy", "VIX", "QQQ"])
    assert quotes["SPY"].last == Decimal("582.4") and quotes["VIX"].last == Decimal("18.5")
    assert quotes["VIX"].quote_time == at(9, 46) and "QQQ" not in quotes


def test_bars_are_built_from_the_recorded_prices_up_to_now(recording):
    replay = ReplayProvider(recording, clock=lambda: at(9, 50))
    bars = replay.bars("SPY", "15min", at(9, 0), at(16, 0))
    assert [(b.start, b.open, b.high, b.low, b.close) for b in bars] == [
        (at(9, 30), Decimal("581.1"), Decimal("582.4"), Decimal("581.1"), Decimal("582.4")),
        (at(9, 45), Decimal("580"), Decimal("580"), Decimal("580"), Decimal("580")),
    ]
    assert ReplayProvider(recording, clock=lambda: at(9, 40)).bars("SPY", "daily", at(0, 0), at(23, 0))[0].close == \
        Decimal("582.4")
    with pytest.raises(UnsupportedRequest):  # option rows are quotes, not bars: said, not faked as empty
        replay.bars("SPY260717C00580000", "1min", at(9, 0), at(16, 0))


def test_unreadable_recordings_fail_with_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ticker,quoteDate,expirDate,strike\nSPY,,2026-07-17,580\n")
    with pytest.raises(ReplayDataError, match="bad.csv:2"):
        ReplayProvider(path)
    path.write_text("symbol,price\nSPY,1\n")
    with pytest.raises(ReplayDataError, match="needs the columns"):
        ReplayProvider(path)
    with pytest.raises(ReplayDataError, match="Cannot open"):
        ReplayProvider(tmp_path / "missing.csv")


def test_the_setting_switches_sources_without_code_changes(settings, recording):
    settings.MARKET_DATA_SOURCE = "simulated"
    assert isinstance(provider_for(), SimulatedProvider)
    settings.MARKET_DATA_SOURCE, settings.ORATS_TOKEN = "orats", "token"
    assert isinstance(provider_for(), OratsProvider)
    settings.MARKET_DATA_SOURCE, settings.MARKET_DATA_REPLAY_FILE = "replay", str(recording)
    assert isinstance(provider_for(), ReplayProvider)
    assert isinstance(provider_for("simulated"), SimulatedProvider)  # an explicit source wins


@pytest.mark.parametrize(
    ("source", "overrides", "message"),
    [("orats", {"ORATS_TOKEN": ""}, "ORATS_TOKEN"), ("replay", {"MARKET_DATA_REPLAY_FILE": ""}, "REPLAY_FILE"),
     ("tradier", {"TRADIER_MARKET_DATA_TOKEN": ""}, "TRADIER_MARKET_DATA_TOKEN"), ("bloomberg", {}, "not one of")],
)
def test_misconfigured_sources_fail_loudly(settings, source, overrides, message):
    for name, value in overrides.items():
        setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        provider_for(source)
