"""`relayq`: parse, run the command, and turn every failure a user can fix into one line on
stderr (exit 2 for usage and configuration errors, 1 otherwise, 130 on Ctrl-C)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from relayq.cli.errors import explain
from relayq.cli.parser import parse
from relayq.schemas.settings import Settings
from relayq.workers.logs import configure_logging


def main(argv: list[str] | None = None) -> NoReturn:
    args = parse(argv)
    sys.exit(run(args.handler, args))


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        configure_logging(Settings().log_level)
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        said = explain(e)
        if said is None:
            raise
        print(f"relayq: {said}", file=sys.stderr)
        return said.exit_code
    return code
