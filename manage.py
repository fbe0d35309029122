#!/usr/bin/env python
import os
import sys

# Commands that answer users' requests connect as the web role; every other command is ops work
# (migrations aside, which connect as the owner) and connects as the worker role.
WEB_COMMANDS = {"runserver", "mcp_server"}


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.local")
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    os.environ.setdefault("TRADEOPTIONS_PROCESS", "web" if command in WEB_COMMANDS else "worker")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
