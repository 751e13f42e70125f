"""Process-pool workers that exit when their parent dies.

A ``ProcessPoolExecutor`` worker waits on its call queue, and it holds a copy of that queue's write end
itself, so when the parent is killed (``kill -9``, the OOM killer, a preempted Slurm job) the worker never
sees the end of the queue: it lives on, orphaned, with its models loaded, and every interrupted and
resumed run adds more. :func:`exit_with_parent`, run in each worker (as, or from, the pool's
initializer), watches the parent's sentinel, which ``multiprocessing`` gives every spawned child and
which becomes ready when the parent exits, and ends the worker then.
"""

from __future__ import annotations

import os
import threading


def exit_with_parent() -> None:
    """In a ``multiprocessing`` child: start a daemon thread that ends this process (``os._exit``, no
    clean-up: the parent that would receive the results is gone) as soon as the parent process exits.
    Does nothing in a process without a ``multiprocessing`` parent."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    def watch() -> None:
        wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="genaudit-exit-with-parent", daemon=True).start()
