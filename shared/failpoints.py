"""Failpoints: named places where a test can make a process die, to prove what survives a crash.

TEST ONLY. A process started with `OCPI_FAILPOINTS=name[,name...]` exits at once (as if SIGKILLed:
no cleanup, no flushing, exit status 137) when it reaches `failpoint(name)`. Without the variable
every failpoint is a no-op. Never set it in a deployment.
"""

from __future__ import annotations

import os
import sys

ENV = "OCPI_FAILPOINTS"
KILLED = 137  # what a shell reports for a SIGKILLed process


def _armed() -> frozenset[str]:
    return frozenset(name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip())


# Read once: the set is fixed for the life of the process, and the check costs a lookup.
ARMED = _armed()


def failpoint(name: str) -> None:
    """Die here when the process was started with this failpoint armed; otherwise do nothing."""
    if name in ARMED:
        sys.stderr.write(f"failpoint {name} reached: exiting\n")
        sys.stderr.flush()
        os._exit(KILLED)
