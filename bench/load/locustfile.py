"""Traders polling their open positions, as the Portfolio page does.

Each simulated user holds its own API token (read from the file in LOAD_TOKENS, one
`token trade_id` per line) and polls `GET /api/trades?status=OPEN` every 15 s; now and then it
opens a position's details and its price history, as a trader expanding a row would.
Run by bench/bench_api_load.py; see docs/benchmarks.md.
"""

import itertools
import os
import random

from locust import HttpUser, between, task

with open(os.environ["LOAD_TOKENS"]) as lines:
    ACCOUNTS = [line.split() for line in lines if line.strip()]
_next_account = itertools.count()


class Trader(HttpUser):
    wait_time = between(14, 16)  # the page polls every 15 s

    def on_start(self):
        token, trade_id = ACCOUNTS[next(_next_account) % len(ACCOUNTS)]
        self.trade_id = trade_id
        # Behind the production proxy every request arrives as HTTPS.
        self.client.headers.update({"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"})

    @task(20)
    def poll_open_positions(self):
        self.client.get("/api/trades?status=OPEN", name="/api/trades?status=OPEN")

    @task(1)
    def expand_a_position(self):
        self.client.get(f"/api/trades/{self.trade_id}", name="/api/trades/{id}")
        if random.random() < 0.5:
            self.client.get(f"/api/trades/{self.trade_id}/snapshots", name="/api/trades/{id}/snapshots")
