"""docker-compose.yml and .env.example stay consistent with the settings the code reads."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _documented() -> set[str]:
    return {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")}


def test_compose_runs_postgres_redis_web_worker_and_exactly_one_beat():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "migrate"} <= set(services)
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "beat" in services["beat"]["command"] and "worker" in services["worker"]["command"]
    app = services["web"]["environment"]
    assert app["DJANGO_SETTINGS_MODULE"] == "tradeoptions.settings.production"
    assert "tradeoptions_app:" in app["DATABASE_URL"] and "tradeoptions_owner:" in app["DATABASE_OWNER_URL"]
    runs_beat = [name for name, service in services.items() if "beat" in service.get("command", [])]
    assert runs_beat == ["beat"]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _probe(service: dict) -> str:
    return " ".join(service["healthcheck"]["test"])


def test_every_long_running_service_has_a_health_check_that_tests_itself():
    services = _compose()
    assert "pg_isready" in _probe(services["postgres"]) and "redis-cli ping" in _probe(services["redis"])
    assert "127.0.0.1:8000/healthz" in _probe(services["web"])
    # The worker pings its own node (named after its container's host name), not any worker.
    for worker in ("monitor", "worker", "webhooks"):
        assert f"{worker}@%h" in services[worker]["command"]
        assert f"inspect ping --destination {worker}@$$(hostname)" in _probe(services[worker])
    # Beat: the heartbeat file its scheduler touches each tick, and the very file the check reads.
    heartbeat = services["beat"]["environment"]["BEAT_HEARTBEAT_FILE"]
    assert f"getmtime('{heartbeat}')" in _probe(services["beat"])
    assert "/healthcheck" in _probe(services["flower"])
    assert [name for name, service in services.items() if "healthcheck" not in service] == ["migrate"]


def test_flower_and_the_mcp_server_are_optional_profiles_and_local_only():
    services = _compose()
    assert services["flower"]["profiles"] == ["monitoring"]
    assert services["mcp"]["profiles"] == ["mcp"]
    assert [name for name, service in services.items() if "profiles" in service] == ["flower", "mcp"]
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert services["mcp"]["ports"] == ["127.0.0.1:8765:8765"]


def test_the_database_url_may_point_elsewhere_and_defaults_to_the_compose_postgres():
    app = _compose()["web"]["environment"]
    assert app["DATABASE_URL"].startswith("${DATABASE_URL:-postgres://tradeoptions_app:")
    assert app["DATABASE_URL"].endswith("@postgres:5432/tradeoptions}")
    assert app["DATABASE_OWNER_URL"].startswith("${DATABASE_OWNER_URL:-postgres://tradeoptions_owner:")
    # Workers, beat and ops commands: a role of their own, the only one allowed the system context.
    assert app["DATABASE_WORKER_URL"].startswith("${DATABASE_WORKER_URL:-postgres://tradeoptions_worker:")
    assert "TRADEOPTIONS_WORKER_PASSWORD" in _compose()["postgres"]["environment"]


def test_the_beat_scheduler_is_the_single_beat_one_with_its_heartbeat():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULER == "tradeoptions.beat:SingleBeatScheduler"


def test_every_variable_compose_uses_is_documented():
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert used and used <= _documented()


def test_every_environment_variable_the_settings_read_is_documented():
    source = "\n".join(path.read_text() for path in (ROOT / "tradeoptions/settings").glob("*.py"))
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', source))
    assert read and read - _documented() == set()


def test_every_setting_the_code_looks_up_is_defined_in_the_settings():
    """`getattr(settings, "X", default)` must not hide a setting nobody can set from the environment."""
    from django.conf import settings

    apps = ["tradeoptions", "trades", "brokers", "monitoring", "analytics"]
    code = "\n".join(path.read_text() for app in apps for path in (ROOT / app).rglob("*.py")
                     if "tests" not in path.parts and "settings" not in path.parts)
    looked_up = set(re.findall(r'getattr\(settings, "([A-Z_]+)"', code))
    looked_up |= {f"SCHEDULE_{name.upper()}" for name in re.findall(r'Job\("monitoring\.(\w+)"', code)}
    assert looked_up and sorted(name for name in looked_up if not hasattr(settings, name)) == []


def _queues_served(command: list[str]) -> set[str]:
    assert command[:4] == ["celery", "-A", "tradeoptions", "worker"] and "-Q" in command, command
    return set(command[command.index("-Q") + 1].split(","))


def test_every_queue_has_its_own_worker_and_the_monitor_shares_its_worker_with_nothing():
    """In compose and in `make run` (the Procfile) alike: each queue is served, by one kind of
    worker, and the monitor's worker serves the monitor's queue alone."""
    from django.conf import settings

    queues = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert {"monitor", "enrichment", "webhooks", settings.CELERY_TASK_DEFAULT_QUEUE} == queues
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    for served_by in (
        {name: _queues_served(service["command"]) for name, service in _compose().items()
         if service.get("command", [])[:4] == ["celery", "-A", "tradeoptions", "worker"]},
        {name: _queues_served(command.split()) for name, command in procfile.items() if " worker " in command},
    ):
        assert served_by["monitor"] == {"monitor"}
        assert sorted(queue for served in served_by.values() for queue in served) == sorted(queues)


def test_scheduled_jobs_go_to_the_monitor_queue_but_maintenance_and_enrichment_never_do():
    from monitoring.schedules import JOBS
    from tradeoptions.celery import app

    def queue_of(task):
        return app.amqp.router.route({}, task)["queue"].name

    # Long nightly maintenance (the price history's partitions, the backup) takes a general
    # worker's slot, never one of the monitor's.
    maintenance = {"monitoring.maintain_snapshot_partitions", "monitoring.back_up_database"}
    assert maintenance < {job.task for job in JOBS}
    assert {queue_of(task) for task in maintenance} == {"celery"}
    assert {queue_of(job.task) for job in JOBS if job.task not in maintenance} | {
        queue_of("monitoring.reconcile_orders")} == {"monitor"}
    assert queue_of("monitoring.collect_entry_context") == queue_of("analytics.compute_targets") == "enrichment"
    assert queue_of("trades.deliver_webhook") == "webhooks"
    # A backlog on the monitor queue serves the cycles before the sweeps (Redis: the lower number first).
    priority = {job.task: app.amqp.router.route({}, job.task)["priority"] for job in JOBS}
    cycles = {"monitoring.sync_orders", "monitoring.match_paper_orders", "monitoring.snapshot_prices",
              "monitoring.take_bookends"}
    assert {priority[task] for task in cycles} == {0}
    assert min(priority[task] for task in set(priority) - cycles) > 0


def test_a_backlog_on_the_monitor_queue_waits_by_priority(redis_client):
    """Each priority has its own Redis list, read in order: the cycles, then the sweeps."""
    from tests.fakes.fault_worker import queue_keys
    from tradeoptions.celery import app

    monitor = [key for key in queue_keys() if key.split("\x06")[0] == "monitor"]
    redis_client.delete(*monitor)
    try:
        for job in ("monitoring.purge_idempotency_keys", "monitoring.snapshot_prices", "monitoring.sync_orders"):
            app.send_task(job, expires=5)
        waiting = [[json.loads(message)["headers"]["task"] for message in redis_client.lrange(key, 0, -1)]
                   for key in monitor]
    finally:
        redis_client.delete(*monitor)
    assert waiting == [["monitoring.sync_orders", "monitoring.snapshot_prices"], [],
                       ["monitoring.purge_idempotency_keys"], []]
