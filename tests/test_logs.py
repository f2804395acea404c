"""shared.logs: one configuration per process, which every logger follows, whenever it was first used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a process of its own: configuring logging is process-wide, and the tests after this one must not inherit it.
_CACHED_THEN_RECONFIGURED = textwrap.dedent(
    """
    from structlog.testing import capture_logs

    from shared import logs

    logs.configure("json")
    log = logs.get_logger("early")
    log.info("first_use")  # cache_logger_on_first_use: this logger is now bound to the configuration above
    logs.configure("console")  # a second command in the same process (as a test run calls several)

    with capture_logs() as captured:
        log.info("after_reconfigure")
        logs.get_logger("late").info("fresh_logger")

    print(sorted(entry["event"] for entry in captured))
    """
)


def test_a_logger_used_before_a_second_configure_follows_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CACHED_THEN_RECONFIGURED], capture_output=True, text=True, check=True, timeout=60
    )

    assert done.stdout.strip() == "['after_reconfigure', 'fresh_logger']"
