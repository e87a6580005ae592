"""Run a command and report its own rusage: ``python _measure_child.py FD CMD...``.

A child started by a large process inherits that process's peak RSS: Linux
starts it in the parent's memory (vfork) and keeps the higher mark through
``exec``. Started from this small launcher, the command's ``ru_maxrss`` is
its own. The launcher writes ``[status, user, system, maxrss_kib]`` as JSON
to file descriptor FD and exits with the command's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    report_fd, command = int(sys.argv[1]), sys.argv[2:]
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    with os.fdopen(report_fd, "w") as report:
        json.dump([status, usage.ru_utime, usage.ru_stime, usage.ru_maxrss], report)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
