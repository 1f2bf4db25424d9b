"""Exit statuses of the ``vtdui`` command, one meaning each (README, "Exit codes").

2 is click's own status for a usage error (unknown option, bad value), so a partial failure uses 3.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ERROR", "INTERRUPTED", "OK", "PARTIAL", "USAGE"]

#: done; everything went through
OK: Final = 0
#: nothing done: invalid configuration, refused input, server not running, expected error (message on stderr)
ERROR: Final = 1
#: usage error found by click before anything ran (unknown option or command, bad option value)
USAGE: Final = 2
#: done in part: some establishments or outbox items failed, the others went through (details in the output)
PARTIAL: Final = 3
#: interrupted by Ctrl+C before the end
INTERRUPTED: Final = 130
