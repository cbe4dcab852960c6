"""``python -m jobledger`` and the ``jobledger`` command.

Nothing heavy is imported before the Ctrl-C handler is in place: until the CLI's own
error handling takes over, SIGINT ends the command with exit 130 and one line, never
a traceback from the middle of an import.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted(signum: int, frame: object) -> None:
    sys.stderr.write("jobledger: error: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    from jobledger.cli import main as cli_main

    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt from here
    cli_main()


if __name__ == "__main__":
    main()
