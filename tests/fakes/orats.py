"""A local stand-in for ORATS datav2, so the provider is tested over real HTTP without an account.

It serves the documented shapes (`{"data": [...]}` envelope, one strikes row per expiry and strike
with call and put sides, `null` fields where the live-derived feed has them), honours `ticker`
(comma lists), `dte` ("lo,hi", either side optional, inclusive) and `fields`, checks the `token`
query parameter, and counts requests. Switches make it answer 403, 500, an HTML page or an
error body, for the next N requests or until cleared.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-orats-token"
PREFIX = "/datav2"

# The documented delayed strikes row (AAPL, 2019-12-23), used as the template for every row.
EXAMPLE_ROW = {
    "ticker": "AAPL", "tradeDate": "2019-12-23", "expirDate": "2019-12-27", "dte": 5, "strike": 180,
    "stockPrice": 283.8, "callVolume": 0, "callOpenInterest": 0, "callBidSize": 166, "callAskSize": 25,
    "putVolume": 1, "putOpenInterest": 7, "putBidSize": 0, "putAskSize": 37, "callBidPrice": 103.7,
    "callValue": 103.851, "callAskPrice": 103.9, "putBidPrice": 0, "putValue": 0, "putAskPrice": 0.01,
    "callBidIv": 0, "callMidIv": 0.837262, "callAskIv": 1.67452, "smvVol": 0.201089, "putBidIv": 0,
    "putMidIv": 0.723295, "putAskIv": 1.44659, "residualRate": -0.0108285, "delta": 1, "gamma": -1.29661e-14,
    "theta": -0.0130789, "vega": -1.93379e-11, "rho": 0.0192188, "phi": -0.0303101, "driftlessTheta": -3.62868e-8,
    "extSmvVol": 0.288125, "extCallValue": 103.741, "extPutValue": 0, "spotPrice": 283.8,
    "updatedAt": "2019-12-23T18:49:36Z",
}
FAILURES = ("403", "500", "html", "message", "error")


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def chain_row(ticker: str, trade_date: date, expiry: date, strike: float, stock_price: float, iv: float = 0.25):
    """A plausible strikes row (Black–Scholes with no rates), good enough to be read back."""
    years = max((expiry - trade_date).days, 1) / 365
    spread = iv * math.sqrt(years)
    d1 = (math.log(stock_price / strike) + spread**2 / 2) / spread
    call = stock_price * _normal_cdf(d1) - strike * _normal_cdf(d1 - spread)
    put = call - stock_price + strike
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)

    def side(value):
        return round(max(value * 0.97 - 0.01, 0), 2), round(value * 1.03 + 0.01, 2)

    (call_bid, call_ask), (put_bid, put_ask) = side(call), side(put)
    return {
        **EXAMPLE_ROW,
        "ticker": ticker, "tradeDate": trade_date.isoformat(), "expirDate": expiry.isoformat(),
        "dte": (expiry - trade_date).days + 1, "strike": strike, "stockPrice": stock_price, "spotPrice": stock_price,
        "callBidPrice": call_bid, "callAskPrice": call_ask, "callValue": round(call, 4),
        "putBidPrice": put_bid, "putAskPrice": put_ask, "putValue": round(put, 4),
        "callMidIv": iv, "putMidIv": iv, "smvVol": iv, "callVolume": 120, "putVolume": 80,
        "callOpenInterest": 1500, "putOpenInterest": 900, "delta": round(_normal_cdf(d1), 6),
        "gamma": round(pdf / (stock_price * spread), 6),
        "theta": round(-stock_price * pdf * iv / (2 * math.sqrt(years)) / 365, 6),
        "vega": round(stock_price * pdf * math.sqrt(years) / 100, 6),
        "updatedAt": f"{trade_date.isoformat()}T18:49:36Z",
    }


@dataclass
class FakeOrats:
    token: str = TOKEN
    strikes: dict[str, list[dict]] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)
    dailies: dict[str, list[dict]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    failure: str | None = None
    failures_left: int | None = None  # None: fail until cleared
    latency: float = 0.0  # seconds added to every answer, to imitate the network

    def __post_init__(self):
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- data -----------------------------------------------------------------------------
    def add_row(self, row: dict) -> dict:
        self.strikes.setdefault(row["ticker"], []).append(row)
        return row

    def add_chain(self, ticker, trade_date, expiries, strikes, stock_price, iv=0.25):
        for expiry in expiries:
            for strike in strikes:
                self.add_row(chain_row(ticker, trade_date, expiry, strike, stock_price, iv))
        self.summaries[ticker] = {"ticker": ticker, "tradeDate": trade_date.isoformat(), "stockPrice": stock_price,
                                  "updatedAt": f"{trade_date.isoformat()}T18:49:36Z"}

    def fail(self, mode: str | None, times: int | None = None) -> None:
        if mode is not None and mode not in FAILURES:
            raise ValueError(f"mode must be one of {FAILURES}")
        with self._lock:
            self.failure, self.failures_left = mode, times

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for seen, _ in self.requests if path is None or seen == path)

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- server ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PREFIX}"

    def start(self) -> FakeOrats:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every small answer, which would swamp the timings.
            disable_nagle_algorithm = True

            def do_GET(self):  # noqa: N802 - the stdlib's name
                if fake.latency:
                    time.sleep(fake.latency)
                status, content_type, body = fake._answer(self.path)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the next poll, and tests start many servers.
        threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-orats", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOrats:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- answers --------------------------------------------------------------------------
    def _answer(self, raw_path: str) -> tuple[int, str, str]:
        parts = urlsplit(raw_path)
        params = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path.removeprefix(PREFIX).strip("/")
        with self._lock:
            self.requests.append((path, {k: v for k, v in params.items() if k != "token"}))
            failure = self.failure
            if failure and self.failures_left is not None:
                self.failures_left -= 1
                if self.failures_left <= 0:
                    self.failure, self.failures_left = None, None
        if failure == "403" or params.get("token") != self.token:
            return 403, "application/json", json.dumps({"message": "User does not have access to this resource"})
        if failure == "500":
            return 500, "text/plain", "Internal Server Error"
        if failure == "html":
            return 200, "text/html", "<html><body><h1>Down for maintenance</h1></body></html>"
        if failure == "message":
            return 200, "application/json", json.dumps({"message": "Invalid ticker parameter"})
        if failure == "error":
            return 400, "application/json", json.dumps({"error": "Bad request: dte"})
        tickers = [t for t in params.get("ticker", "").upper().split(",") if t]
        if path in ("strikes", "live/strikes"):
            rows = [row for ticker in tickers for row in self.strikes.get(ticker, []) if self._in_dte(row, params)]
        elif path == "summaries":
            rows = [self.summaries[ticker] for ticker in tickers if ticker in self.summaries]
        elif path == "hist/dailies":
            rows = [row for ticker in tickers for row in self.dailies.get(ticker, [])]
        else:
            return 404, "application/json", json.dumps({"message": f"Unknown endpoint {path}"})
        if params.get("fields"):
            wanted = params["fields"].split(",")
            rows = [{name: row[name] for name in wanted if name in row} for row in rows]
        return 200, "application/json", json.dumps({"data": rows})

    @staticmethod
    def _in_dte(row: dict, params: dict) -> bool:
        if not params.get("dte"):
            return True
        low, _, high = params["dte"].partition(",")
        return (not low or row["dte"] >= int(low)) and (not high or row["dte"] <= int(high))
