"""Worker processes that read a big import's files while the importing process merges.

Parsing is a good part of an import where the few lines parsed are big (Claude's
transcripts), so beyond merge.PARALLEL_BYTES of new input the files go, TASK_BYTES at a
time, to the standard library's process pool; this process merges the answers in file order
as they come, holding at most AHEAD of them per worker, and reads tasks itself while they
have not answered. With a single core, or for a reader that says PARALLEL = False,
everything is read here. Workers that cannot start or that die leave what they did not
answer to this process: the counts are the same either way.

How workers start (`start_method`), measured on the 2-core test machine: from starting the
pool to the first answer of a one-file task, in a fresh process (medians of 25, alternated),
fork 50 ms, spawn 217 ms, forkserver 224 ms, and the hand-rolled `python -c` workers this
pool replaced 137 ms; the first import of bench/import.py's 604 MB Claude tree with one
worker (in-process medians of 3) took 5.06 s forked, 5.11 s spawned, 5.21 s from a fork
server, 5.43 s with the hand-rolled workers, and 6.40 s without a worker. So fork where that
is safe, spawn elsewhere.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

import psutil

from aitrack.domain import pricing
from aitrack.store.importing import readers
from aitrack.store.importing.files import FileState, Read, read_file

TASK_BYTES = 8 << 20  # input per worker task
# Answers of a worker held while the merge is busy, pickled (as compact as they travel).
# Fewer tie the worker to the merge's pace: with 1 the first import of the bench tree took
# 6.2 s instead of 4.7 s; unpickled on arrival, 8 took its peak RSS from 118 to 129 MB.
AHEAD = 8
MAX_WORKERS = 4  # the merge, in one process, keeps up with about this many
# Tasks this process reads itself while the workers have not answered, held until their
# turn (the merge, faster than one worker since it stopped waiting for whole batches and
# writing summaries row by row, was idle a quarter of a first import of the small tree).
# In-process medians, 1 worker: small tree 1.47 s holding 2, 1.09 s holding 4 (1.11 s: 8);
# the year 3.94 s, 3.74 s (3.75 s).
HELD = 4

Task = list[tuple[str, FileState | None]]  # (path, what the last import knew of it)
Answer = list[tuple[Read | None, dict[str, int]]]  # a task's reads, what each skipped


class WorkerFailed(Exception):
    """The workers could not start or stopped answering: read the rest here."""


def how_many() -> int:
    """Worker processes for a big import now (0: read it all here): one wherever there is
    a second core, more only on cores other work leaves idle. One worker pays even on a busy
    machine, since this process reads what it has not answered yet while the merge waits
    (the small tree of bench/import.py at a load of 4 on 2 cores, medians of 5 alternated:
    2.69 s with one worker, 3.61 s without); and sampling the load only where it can give
    more than one spares the 50 ms it takes."""
    cores = os.cpu_count() or 1
    most = min(MAX_WORKERS, cores - 1)
    if most <= 1:
        return max(0, most)
    return max(1, min(most, int(cores - busy_cores(cores) + 0.25)))


def busy_cores(cores: int) -> float:
    """How many cores other work keeps busy now: CPU use sampled over 50 ms (the load
    average trails by a minute, and a machine just done with other work looks busy)."""
    return cores * psutil.cpu_percent(interval=0.05) / 100


def tasks(todo: list[tuple[str, os.stat_result, FileState | None]]) -> list[Task]:
    """The files to read, in order, cut into tasks of about TASK_BYTES of new input."""
    out, task, size = [], [], 0
    for path, st, prev in todo:
        task.append((path, prev))
        size += st.st_size - (prev.offset if prev else 0)
        if size >= TASK_BYTES:
            out.append(task)
            task, size = [], 0
    out.append(task)
    return out


def start_method() -> str:
    """fork where it is safe: on Linux, from a process with no other thread (`aitrack import`,
    the report's import). A forked child inherits every lock as it was, held by threads it
    does not have (the agent's, a wrapped run's), and macOS's system libraries are not
    fork-safe; spawn there: a new interpreter per worker."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


class Workers:
    """A process pool reading one tool's files; `map` answers tasks in order."""

    def __init__(self, n: int, tool: str, price_overrides: dict):
        context = multiprocessing.get_context(start_method())
        self.ahead = n * (AHEAD + 1)
        self.pool = ProcessPoolExecutor(n, mp_context=context, initializer=_start,
                                        initargs=(tool, price_overrides))

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def map(self, todo: list[Task], here: Callable[[Task], Answer] | None = None
            ) -> Iterator[Answer | None]:
        """Each task's reads with what each skipped, in order; WorkerFailed when the
        workers fail (what was answered before stands). None before an answer the workers
        have not given yet: the merge may use the wait (once per wait); if it did not and
        they still have not, this process reads the next task not sent to them yet itself
        (`here`), holding at most HELD of those until their turn."""
        queue: deque[Future | Answer] = deque()  # in task order: sent, or read here
        rest = iter(todo)
        try:
            for task in islice(rest, self.ahead):
                queue.append(self.pool.submit(_read_task, task))
        except Exception as exc:  # noqa: BLE001 - no process to spare, or it died
            raise WorkerFailed() from exc
        while queue:
            head = queue[0]
            if isinstance(head, Future) and not head.done():
                yield None
                if here is not None and not head.done() and sum(
                        not isinstance(q, Future) for q in queue) < HELD:
                    task = next(rest, None)
                    if task is not None:
                        queue.append(here(task))
                        continue
            queue.popleft()
            if not isinstance(head, Future):
                yield head
                continue
            try:
                answer = head.result()
                task = next(rest, None)
                if task is not None:  # keep the workers reading while this one merges
                    queue.append(self.pool.submit(_read_task, task))
            except Exception as exc:  # noqa: BLE001 - a real error shows again, read here
                raise WorkerFailed() from exc
            yield pickle.loads(answer)


# a worker process's own: its tool's reader module and price table (set up by _start)
_transcripts = None
_prices = None


def _start(tool: str, price_overrides: dict) -> None:
    """A worker's set-up. Ctrl-C is for the importing process: it stops the pool."""
    global _transcripts, _prices
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _transcripts = readers.of(tool)
    _prices = pricing.load(price_overrides)


def _read_task(task: Task) -> bytes:
    """A worker's task: read these files. What travels back leaves out the price table, and
    is pickled here: the pool would unpickle it on arrival, in a thread of the merging
    process, and hold it unpickled (several times its pickled size) until it is merged."""
    out = []
    for path, prev in task:
        skipped: dict[str, int] = {}
        read = read_file(_transcripts, path, prev, _prices, skipped)
        if read is not None:
            read.reader.prices = None
        out.append((read, skipped))
    return pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
