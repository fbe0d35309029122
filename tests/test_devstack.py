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


def test_a_fresh_machine_gets_a_vapid_key_pair_once_and_the_key_is_never_printed(tmp_path, monkeypatch, capsys):
    """An older secrets file (before Web Push) gets a pair added; a second run keeps it."""
    from py_vapid import Vapid

    secrets = tmp_path / "secrets.env"
    secrets.write_text("SECRET_KEY=s\nENCRYPTION_KEYS=k\nDEMO_PASSWORD=p\n")
    monkeypatch.setattr(devstack, "SECRETS", secrets)
    for name in ("SECRET_KEY", "ENCRYPTION_KEYS", "DEMO_PASSWORD", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY"):
        monkeypatch.setenv(name, "")  # so that what the run sets is undone after the test, as it was before
        monkeypatch.delenv(name)
    devstack.ensure_local_secrets()
    kept = dict(line.split("=", 1) for line in secrets.read_text().splitlines())
    devstack.ensure_local_secrets()
    assert secrets.read_text().count("VAPID_PRIVATE_KEY=") == 1
    signer = Vapid.from_string(kept["VAPID_PRIVATE_KEY"])
    assert signer.public_key.public_numbers().x > 0 and len(kept["VAPID_PUBLIC_KEY"]) == 87  # 65 bytes, base64url
    from trades.services.push import _vapid

    assert _vapid(kept["VAPID_PRIVATE_KEY"], kept["VAPID_PUBLIC_KEY"])[1] == kept["VAPID_PUBLIC_KEY"]  # a pair
    said = capsys.readouterr()
    assert "made a VAPID key pair" in said.out
    assert kept["VAPID_PRIVATE_KEY"] not in said.out + said.err
