"""Every ops command explains itself, writes only with a deliberate flag, and shows progress on a
terminal only."""

import io

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
