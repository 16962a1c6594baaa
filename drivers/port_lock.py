"""One device, one process: the exclusive lock every serial driver takes when it opens a port.

Two hosts interleaving commands to one pump would each believe a rate the other may have
changed; two readers of one balance would each take the other's replies for their own. The lock
is ``flock`` on the port's file, as pyserial's ``exclusive`` does, so it is released when the
holder closes the port or dies.
"""

from __future__ import annotations

import fcntl
import io
from typing import Protocol


class LockablePort(Protocol):
    def close(self) -> None: ...


def lock_alone(port: LockablePort) -> bool:
    """Take the port for this process; False (and the port closed) if another process holds it.

    Ports without a lockable file behind them (``loop://``, ``socket://``) have nothing to share
    and pass.
    """
    fileno = getattr(port, "fileno", None)
    if fileno is None:
        return True
    try:
        fcntl.flock(fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        port.close()
        return False
    except (OSError, io.UnsupportedOperation):
        return True
    return True
