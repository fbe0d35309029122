"""Every ops command explains itself, writes only with a deliberate flag, and shows progress on a
terminal only."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

from tradeoptions.ops import OpsCommand

OPS = {
    "install_schedules": True, "simulate": True, "backfill_snapshots": True, "reconcile": True,
    "create_demo_user": True, "rotate_encryption_keys": True, "backfill_targets": True, "export_dataset": False,
}


@pytest.mark.parametrize(("name", "writes"), sorted(OPS.items()))
def test_each_ops_command_has_help_and_a_write_flag_only_if_it_writes(name, writes):
    command = load_command_class(get_commands()[name], name)
    assert isinstance(command, OpsCommand)
    parser = command.create_parser("manage.py", name)
    text = parser.format_help()
    assert len(command.help) > 80, f"{name}'s help says too little"
    assert ("--apply" in text) is writes
    if writes:
        assert "Without it the command only shows what it would do" in " ".join(text.split())


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_on_a_terminal_and_not_elsewhere():
    command = OpsCommand(stdout=io.StringIO(), stderr=_Terminal())
    assert list(command.progress(range(3), total=3, desc="trades")) == [0, 1, 2]
    assert "trades" in command.stderr._out.getvalue()

    quiet = OpsCommand(stdout=io.StringIO(), stderr=io.StringIO())
    assert list(quiet.progress(range(3), total=3, desc="trades")) == [0, 1, 2]
    assert quiet.stderr._out.getvalue() == ""


def test_from_the_shell_a_failure_is_one_line_and_exit_status_1():
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    result = subprocess.run([sys.executable, "manage.py", "backfill_snapshots", "--from", "2026-11-05", "--to",
                             "2026-11-01"], cwd=Path(__file__).resolve().parent.parent, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "CommandError: --to 2026-11-01 is before --from 2026-11-05." in result.stderr
    assert "Traceback" not in result.stderr
