"""POST /api/spreads/preview: the strategy builder's numbers, every template priced at the natural
sides of a hand-set book and checked against figures worked by hand (docs/spreads.md), the
calendar marked modelled, unlimited risk said so, and bad input refused field by field."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokers.occ import build_symbol

PREVIEW = "/api/spreads/preview"
DEC18, JAN15 = "2026-12-18", "2027-01-15"

# SPY at 570 on Tuesday Dec 1, 2026, 10:00 New York. (bid, ask, IV) by contract.
BOOK = {
    ("C", "565"): ("7.00", "7.20", "0.19"), ("C", "570"): ("4.10", "4.30", "0.18"),
    ("C", "575"): ("2.10", "2.30", "0.17"), ("C", "580"): ("1.00", "1.20", "0.16"),
    ("C", "585"): ("0.30", "0.40", "0.16"), ("P", "555"): ("0.90", "1.00", "0.22"),
    ("P", "560"): ("1.60", "1.80", "0.21"), ("P", "565"): ("3.00", "3.20", "0.20"),
    ("P", "570"): ("4.50", "4.70", "0.19"),
}


def symbol(kind: str, strike: str, expiry: str = DEC18) -> str:
    return build_symbol("SPY", datetime.fromisoformat(expiry).date(), "CALL" if kind == "C" else "PUT",
                        Decimal(strike))


@pytest.fixture
def book(market):
    market.moment = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    market.set_spot("SPY", "570")
    for (kind, strike), (bid, ask, iv) in BOOK.items():
        market.set_quote(symbol(kind, strike), bid, ask, iv=iv)
    market.set_quote(symbol("C", "570", JAN15), "6.30", "6.50", iv="0.18")
    return market


@pytest.fixture
def preview(api_as, trader, book):
    client = api_as(trader)

    def ask(**body):
        return client.post(PREVIEW, {"ticker": "SPY", "qty": 1, **body}, format="json")

    return ask


def figures(body: dict) -> dict:
    return {name: body[name] for name in ("net_direction", "net_price", "cost", "max_profit", "max_loss",
                                          "breakevens", "width", "defined_risk", "buying_power", "modelled")}


# strategy fields → (direction, net per share, cost, max profit, max loss, breakevens, width, buying power)
WORKED = [
    # Buy the 570 call at 4.30, sell the 575 at 2.10: 2.20 debit; (5 − 2.20) × 100 = 280 at most.
    ({"strategy_type": "vertical", "option_type": "CALL", "lower": "570", "upper": "575", "expiry": DEC18},
     ("debit", "2.2000", "220.00", "280.00", "220.00", ["572.2000"], "5.0000", "220.00")),
    # Sell the 565 put at 3.00, buy the 560 at 1.80: 1.20 credit; 5 × 100 − 120 = 380 at risk.
    ({"strategy_type": "vertical", "option_type": "PUT", "lower": "560", "upper": "565", "expiry": DEC18,
      "credit": True},
     ("credit", "1.2000", "-120.00", "120.00", "380.00", ["563.8000"], "5.0000", "380.00")),
    # Buy the 570 call at 4.30 and the 570 put at 4.70: 9.00; breakevens 570 ± 9.
    ({"strategy_type": "straddle", "strike": "570", "expiry": DEC18},
     ("debit", "9.0000", "900.00", None, "900.00", ["561.0000", "579.0000"], "0.0000", "900.00")),
    # Buy the 560 put at 1.80 and the 580 call at 1.20: 3.00; breakevens 557 and 583.
    ({"strategy_type": "strangle", "put_strike": "560", "call_strike": "580", "expiry": DEC18},
     ("debit", "3.0000", "300.00", None, "300.00", ["557.0000", "583.0000"], "0.0000", "300.00")),
    # Buy 555 P 1.00, sell 560 P 1.60, sell 580 C 1.00, buy 585 C 0.40: 1.20 credit; 5 × 100 − 120 at risk.
    ({"strategy_type": "iron_condor", "long_put": "555", "short_put": "560", "short_call": "580",
      "long_call": "585", "expiry": DEC18},
     ("credit", "1.2000", "-120.00", "120.00", "380.00", ["558.8000", "581.2000"], "5.0000", "380.00")),
    # Buy 565 C 7.20, sell two 570 C at 4.10, buy 575 C 2.30: 1.30 debit; (5 − 1.30) × 100 at the body.
    ({"strategy_type": "butterfly", "option_type": "CALL", "lower": "565", "middle": "570", "upper": "575",
      "expiry": DEC18},
     ("debit", "1.3000", "130.00", "370.00", "130.00", ["566.3000", "573.7000"], "5.0000", "130.00")),
    # Buy 560 P 1.80, sell two 565 P at 3.00, buy 570 P 4.70: 0.50 debit; (5 − 0.50) × 100 at the body.
    ({"strategy_type": "butterfly", "option_type": "PUT", "lower": "560", "middle": "565", "upper": "570",
      "expiry": DEC18},
     ("debit", "0.5000", "50.00", "450.00", "50.00", ["560.5000", "569.5000"], "5.0000", "50.00")),
]


@pytest.mark.parametrize(("body", "worked"), WORKED, ids=[body["strategy_type"] + ("-credit" if body.get("credit")
                                                                                   else "") for body, _ in WORKED])
def test_each_template_is_priced_at_the_natural_sides_with_the_figures_worked_by_hand(preview, body, worked):
    response = preview(**body)
    assert response.status_code == 200, response.json()
    answer = response.json()
    direction, net, cost, max_profit, max_loss, breakevens, width, buying_power = worked
    assert figures(answer) == {"net_direction": direction, "net_price": net, "cost": cost, "max_profit": max_profit,
                               "max_loss": max_loss, "breakevens": breakevens, "width": width,
                               "defined_risk": True, "buying_power": buying_power, "modelled": False}
    assert answer["underlying_price"] == "570.0000" and answer["strategy_type"] == body["strategy_type"]
    for leg in answer["legs"]:
        bid, ask, _ = BOOK[(leg["option_type"][0], str(int(Decimal(leg["strike"]))))]
        assert leg["price"] == (f"{Decimal(ask):.4f}" if leg["side"] == "LONG" else f"{Decimal(bid):.4f}")
        assert Decimal(leg["mid"]) == (Decimal(bid) + Decimal(ask)) / 2 and leg["iv"] > 0
    # The chart: at expiry equals the worked extremes; today lies inside them, and every strike is a point.
    at_expiry = [Decimal(point["at_expiry"]) for point in answer["payoff"]]
    today = [Decimal(point["today"]) for point in answer["payoff"]]
    assert min(at_expiry) == -Decimal(max_loss)
    if max_profit is not None:
        assert max(at_expiry) == Decimal(max_profit) and max(today) <= Decimal(max_profit)
    assert min(today) >= -Decimal(max_loss) and today != at_expiry
    prices = {Decimal(point["underlying"]) for point in answer["payoff"]}
    assert {Decimal(leg["strike"]) for leg in answer["legs"]} <= prices and Decimal(570) in prices
    assert set(answer["greeks"]) == {"delta", "gamma", "theta", "vega"} and answer["today_modelled"] is True


def test_more_spreads_scale_every_dollar_figure_not_the_per_share_ones(preview):
    one = preview(strategy_type="iron_condor", long_put="555", short_put="560", short_call="580", long_call="585",
                  expiry=DEC18).json()
    three = preview(strategy_type="iron_condor", long_put="555", short_put="560", short_call="580", long_call="585",
                    expiry=DEC18, qty=3).json()
    assert (three["net_price"], three["cost"], three["max_profit"], three["max_loss"], three["buying_power"]) == (
        "1.2000", "-360.00", "360.00", "1140.00", "1140.00")
    assert three["breakevens"] == one["breakevens"]
    assert Decimal(three["greeks"]["delta"]) == pytest.approx(3 * Decimal(one["greeks"]["delta"]), abs=Decimal("0.02"))


def test_the_iron_condor_greeks_are_short_vega_and_long_theta(preview):
    greeks = preview(strategy_type="iron_condor", long_put="555", short_put="560", short_call="580",
                     long_call="585", expiry=DEC18).json()["greeks"]
    assert Decimal(greeks["vega"]) < 0 < Decimal(greeks["theta"]) and Decimal(greeks["gamma"]) < 0


def test_a_calendar_is_modelled_at_the_front_expiry(preview):
    response = preview(strategy_type="calendar", option_type="CALL", strike="570", front_expiry=DEC18,
                       back_expiry=JAN15)
    assert response.status_code == 200, response.json()
    body = response.json()
    # Sell the December 570 call at 4.10, buy the January one at 6.50: 2.40 debit, the most it can lose.
    assert (body["modelled"], body["net_direction"], body["net_price"], body["cost"]) == (True, "debit", "2.4000",
                                                                                         "240.00")
    assert body["max_loss"] == "240.00" and body["buying_power"] == "240.00" and body["defined_risk"] is True
    assert Decimal(body["max_profit"]) > 0 and body["width"] == "0.0000"
    low, high = (Decimal(price) for price in body["breakevens"])
    assert low < 570 < high
    assert [leg["expiry"] for leg in body["legs"]] == [DEC18, JAN15]
    # The front's cutoff curve peaks at the strike: no point of it is above the max profit found.
    assert max(Decimal(point["at_expiry"]) for point in body["payoff"]) <= Decimal(body["max_profit"])


def test_a_short_strangle_says_its_risk_is_unlimited_and_reserves_nothing_here(preview):
    body = preview(strategy_type="strangle", put_strike="560", call_strike="580", expiry=DEC18, short=True).json()
    # Sell the 560 put at 1.60 and the 580 call at 1.00: 2.60 credit, kept between 557.40 and 582.60.
    assert figures(body) == {"net_direction": "credit", "net_price": "2.6000", "cost": "-260.00",
                             "max_profit": "260.00", "max_loss": None, "breakevens": ["557.4000", "582.6000"],
                             "width": "0.0000", "defined_risk": False, "buying_power": None, "modelled": False}
    assert body["unlimited_loss"] is True and body["risk_note"].startswith("Unlimited risk")


def test_a_short_straddle_is_a_credit_with_unlimited_risk(preview):
    body = preview(strategy_type="straddle", strike="570", expiry=DEC18, short=True).json()
    # Sell the 570 call at 4.10 and the 570 put at 4.50: 8.60 credit, kept between 561.40 and 578.60.
    assert figures(body) == {"net_direction": "credit", "net_price": "8.6000", "cost": "-860.00",
                             "max_profit": "860.00", "max_loss": None, "breakevens": ["561.4000", "578.6000"],
                             "width": "0.0000", "defined_risk": False, "buying_power": None, "modelled": False}
    assert [leg["side"] for leg in body["legs"]] == ["SHORT", "SHORT"] and body["unlimited_loss"] is True


def test_a_naked_put_has_a_bounded_loss_but_is_not_defined_risk(preview):
    body = preview(legs=[{"option_symbol": symbol("P", "560"), "side": "SHORT"}]).json()
    assert (body["strategy_type"], body["max_loss"], body["max_profit"]) == ("custom", "55840.00", "160.00")
    assert body["defined_risk"] is False and body["buying_power"] is None and body["unlimited_loss"] is False
    assert body["risk_note"].startswith("Not defined-risk")


def test_legs_by_parts_and_by_symbol_are_the_same_position(preview):
    by_symbol = preview(legs=[{"option_symbol": symbol("C", "570"), "side": "LONG"},
                              {"option_symbol": symbol("C", "575"), "side": "SHORT"}], strategy_type="vertical")
    by_parts = preview(legs=[{"option_type": "CALL", "strike": "570", "expiry": DEC18, "side": "LONG"},
                             {"option_type": "CALL", "strike": "575", "expiry": DEC18, "side": "SHORT", "ratio": 1}],
                       strategy_type="vertical")
    assert by_symbol.status_code == by_parts.status_code == 200, by_symbol.json()
    assert figures(by_symbol.json()) == figures(by_parts.json())
    assert by_parts.json()["max_profit"] == "280.00"


def test_without_implied_volatilities_the_expiry_figures_stand_and_today_is_null(preview, book):
    book.ivs.clear()
    body = preview(strategy_type="vertical", option_type="CALL", lower="570", upper="575", expiry=DEC18).json()
    assert body["max_profit"] == "280.00" and body["today_modelled"] is False and body["greeks"] is None
    assert all(point["today"] is None and point["at_expiry"] is not None for point in body["payoff"])


def _errors(response) -> dict[str, list[str]]:
    assert response.status_code == 400, response.json()
    errors = {}
    for error in response.json()["errors"]:
        errors.setdefault(error["attr"], []).append(error["detail"])
    return errors


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"strategy_type": "vertical", "option_type": "CALL", "lower": "575", "upper": "570", "expiry": DEC18},
     "upper", "must be above the lower strike"),
    ({"strategy_type": "iron_condor", "long_put": "560", "short_put": "555", "short_call": "580", "long_call": "585",
      "expiry": DEC18}, "long_put", "put wing is out of order"),
    ({"strategy_type": "butterfly", "option_type": "PUT", "lower": "565", "middle": "575", "upper": "570",
      "expiry": DEC18}, "middle", "must rise"),
    ({"strategy_type": "strangle", "put_strike": "580", "call_strike": "560", "expiry": DEC18},
     "call_strike", "must be above its put strike"),
    ({"strategy_type": "calendar", "option_type": "CALL", "strike": "570", "front_expiry": JAN15,
      "back_expiry": DEC18}, "back_expiry", "must expire after"),
    ({"strategy_type": "vertical", "option_type": "CALL", "lower": "570", "expiry": DEC18}, "upper",
     "Give the upper strike."),
    ({"strategy_type": "vertical", "option_type": "CALL", "lower": "570", "upper": "590", "expiry": DEC18},
     "upper", "The market lists no SPY Dec 18, 2026 590 call"),
    ({"strategy_type": "straddle", "strike": "570", "expiry": "2026-11-27"}, "expiry", "have stopped trading"),
    ({"strategy_type": "straddle", "strike": "570", "expiry": "2026-12-19"}, "expiry", "not a trading day"),
    ({"strategy_type": "straddle", "strike": "-5", "expiry": DEC18}, "strike", "above"),
    ({"strategy_type": "strangle", "put_strike": "560", "call_strike": "580", "expiry": DEC18, "qty": 0}, "qty",
     "number of spreads"),
    ({}, "strategy_type", "Pick a strategy"),
    ({"legs": [{"option_symbol": "QQQ261218C00500000", "side": "LONG"}]}, "legs", "is not a SPY option"),
    ({"legs": [{"option_symbol": "SPY261218C00570000", "side": "LONG"},
               {"option_symbol": "SPY261218C00570000", "side": "SHORT"}]}, "legs", "in the position twice"),
    ({"legs": [{"strike": "570", "side": "LONG"}]}, "legs", "give its option symbol"),
    ({"legs": [{"option_symbol": "SPY261218C00570000", "side": "BOUGHT"}]}, "legs.0.side", ""),
    ({"legs": []}, "legs", "1 to 4 legs"),
])
def test_bad_input_is_a_field_error_in_trader_words(preview, body, field, words):
    errors = _errors(preview(**body))
    assert field in errors, errors
    assert any(words in text for text in errors[field]), errors


def test_a_leg_sold_where_nobody_bids_is_refused(preview, book):
    book.set_quote(symbol("C", "575"), None, "2.30")
    errors = _errors(preview(strategy_type="vertical", option_type="CALL", lower="570", upper="575", expiry=DEC18))
    assert errors == {"upper": ["The SPY Dec 18, 2026 575 call has no bid: nobody is buying it now."]}


def test_a_ticker_without_a_price_is_refused(preview, book):
    book.spots.clear()
    assert _errors(preview(strategy_type="straddle", strike="570", expiry=DEC18)) == {
        "ticker": ["The market-data source has no price for SPY now."]}


def test_the_preview_needs_a_login(client, book):
    assert client.post(PREVIEW, {"ticker": "SPY"}, content_type="application/json").status_code in (401, 403)


def test_the_route_is_in_the_openapi_document(api_as, trader):
    schema = api_as(trader).get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/spreads/preview"]["post"]
    assert "200" in operation["responses"] and "400" in operation["responses"]


def test_market_data_down_is_a_503_in_the_error_shape(preview, book, monkeypatch):
    from brokers.base import BrokerUnavailable

    def down(underlying):
        raise BrokerUnavailable("the source did not answer")

    monkeypatch.setattr(book, "underlying_price", down)
    response = preview(strategy_type="straddle", strike="570", expiry=DEC18)
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "market_data_unavailable"
