"""Imported first by the sandbox's fork server, and by nothing else: it dies with the service.

The fork server is a process of its own that outlives its parent unless told otherwise; with
``PR_SET_PDEATHSIG`` the kernel kills it when the service does, and each job process it forks
(which asks the same of the server, see :func:`geo.uploads.sandbox._child`) dies with it. So a service
killed with SIGKILL leaves no job running on its own, half way through a transaction.
"""

from __future__ import annotations

import ctypes
import signal

try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):  # not Linux
    pass
