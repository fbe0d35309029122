"""`make run`'s last words and `make manage`: what a newcomer needs, where it cannot scroll away."""

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import devstack  # noqa: E402


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield str(server.server_address[1])
    server.shutdown()


def test_once_the_web_answers_the_login_is_printed_last(web, capsys):
    assert devstack.announce_when_ready(web, "demo", "s3cret-demo", timeout=10)
    printed = capsys.readouterr().out
    assert f"http://127.0.0.1:{web}/" in printed and "demo / s3cret-demo" in printed
    assert "make manage ARGS=createsuperuser" in printed and "WEB_PORT=" in printed


def test_a_web_that_never_answers_is_said_plainly(capsys):
    with HTTPServer(("127.0.0.1", 0), Health) as silent:  # bound, never served: nothing answers
        port = str(silent.server_address[1])
        assert not devstack.announce_when_ready(port, "demo", "s3cret-demo", timeout=1)
    printed = capsys.readouterr().out
    assert "did not answer" in printed and "s3cret-demo" not in printed


def test_make_manage_runs_a_manage_py_command_on_the_same_database():
    result = subprocess.run([sys.executable, "scripts/devstack.py", "manage", "check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
