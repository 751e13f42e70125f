"""Run a job's shards on Ray (extra ``ray``): a local Ray on this machine, or a cluster (docs/scale-out.md).

The driver cuts the job into shards (:mod:`audit.scale.shards`) and hands them to a pool of actors. Each
actor builds the job's models once (the face backend, the generator and extractors, the scorer) and runs
shard after shard through exactly the code ``--shard K/N`` runs, writing the same part files and
markers into the shared ``--out`` (on a cluster: a folder every node mounts). So:

- resume is genaudit's own: shards with a marker are skipped, a torn shard continues from its part file;
  Ray's checkpointing is not used;
- a worker killed mid-shard is restarted by Ray and the shard retried (``max_restarts``,
  ``max_task_retries``, :data:`RESTARTS` times), continuing from what the dead worker wrote; a worker
  that keeps dying stops the run with one line, and a rerun continues from the shards done;
- the driver then merges the parts in index order, as after ``--shard`` runs: the results equal a
  one-process run's.

Errors that stop a run before it starts are one line: Ray not installed, an address nobody answers at,
a cluster without the GPUs asked for.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from audit.errors import GenauditError, InputError
from audit.scale.shards import Shard, ShardMarker, all_shards

log = logging.getLogger(__name__)

RESTARTS = 3  # a worker that dies this many times on one shard (a crash, not a kill) stops the run with one line
SHARDS_PER_WORKER = 4  # default shards per worker: a killed shard redoes little, and stragglers even out
_ERROR_LINE = re.compile(r"^audit\.errors\.(\w+): (.+)$", re.MULTILINE)  # a genaudit error in a traceback
# what Ray Data appends to a UDF's error when it gives up retrying (ray.data._internal.util, Ray 2.60)
_RETRY_NOTE = re.compile(r"\nFailed to [^\n]* after \d+/\d+ attempts \(total backoff .*", re.DOTALL)
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # a local Ray's object store: shards pass no images through it


@dataclass(frozen=True)
class RayOptions:
    """Where Ray runs and how the work is cut: ``address`` None starts a local Ray on this machine."""

    address: str | None = None
    workers: int | None = None
    gpus: float = 0.0
    shards: int | None = None
    batch_size: int | None = None  # images per Ray Data batch (the audit's actor calls)

    @classmethod
    def from_spec(
        cls,
        spec: str,
        *,
        workers: int | None = None,
        gpus: float = 0.0,
        shards: int | None = None,
        batch_size: int | None = None,
    ) -> Any:
        """``ray`` or ``ray:ADDRESS`` (the CLI's ``--executor``) -> options."""
        if spec != "ray" and not spec.startswith("ray:"):
            raise InputError(f"--executor must be local, ray or ray:ADDRESS, got {spec!r}")
        address = spec[4:] or None if spec.startswith("ray:") else None
        return cls(address=address, workers=workers, gpus=gpus, shards=shards, batch_size=batch_size)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError('--executor ray needs Ray: pip install "genaudit[ray]"') from None
    return ray


@contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Ray, started (or joined) for the run and shut down after it; a Ray the caller started is reused."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    env = {"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "")}}
    from audit.cache_dir import CACHE_ENV

    if CACHE_ENV in os.environ:  # bench shards look for kept reference features where the driver keeps them
        env["env_vars"][CACHE_ENV] = os.environ[CACHE_ENV]
    if options.address not in (None, "auto"):
        _check_reachable(options.address)
    try:
        if options.address is None:
            ray.init(
                include_dashboard=False, log_to_driver=False, object_store_memory=OBJECT_STORE_BYTES,
                runtime_env=env, logging_level=logging.WARNING,
            )  # fmt: skip
        else:
            ray.init(address=options.address, log_to_driver=False, runtime_env=env, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        where = options.address or "this machine"
        raise InputError(f"cannot start or reach Ray at {where}: {' '.join(str(exc).split())[:300]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A cluster address nobody answers at is one line after ``timeout`` seconds, not Ray's minutes of
    retries."""
    import socket

    host_port = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} must be auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or exc
        raise InputError(f"cannot start or reach Ray at {address}: {reason} (is the cluster up?)") from None


def plan(ray: Any, options: RayOptions) -> tuple[int, dict[str, float]]:
    """(workers, each actor's resources), checked against the cluster: GPUs asked for must exist."""
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0.0)), float(resources.get("CPU", 1.0))
    if options.gpus > 0:
        workers = options.workers or max(1, int(gpus / options.gpus))
        if gpus < options.gpus * workers - 1e-9:
            raise InputError(
                f"the Ray cluster has {gpus:g} GPU(s); {workers} worker(s) x {options.gpus:g} GPU(s) were asked for"
            )
        return workers, {"num_gpus": options.gpus, "num_cpus": 1}
    workers = options.workers or max(1, int(cpus))
    return workers, {"num_cpus": 1}


def run_shards(
    options: RayOptions,
    job: str,
    out: Any,
    make_worker: Callable[[], Callable[[Shard], Any]],
    *,
    progress: bool = True,
) -> list[Shard]:
    """Run every unfinished shard of ``job`` in ``out`` on Ray. ``make_worker`` (picklable) is called once in
    each actor to build the models; what it returns is called with each shard and writes the shard's outputs
    and marker. Returns the shards run now."""
    with ray_session(options) as ray, WorkerPool(ray, options, job, make_worker) as pool:
        return pool.run_shards(out, progress=progress)


class WorkerPool:
    """Ray actors (:class:`ShardWorker`) that build a job's models once, then run shard after shard and, for
    a job that has more to do with warm models (the bench scores its cells), any method of the worker that
    ``make_worker`` returned (:meth:`submit`). Actors start on first use and are killed on exit."""

    def __init__(self, ray: Any, options: RayOptions, job: str, make_worker: Callable[[], Any]) -> None:
        self.ray, self.options, self.job, self.make_worker = ray, options, job, make_worker
        self.workers, self.resources = plan(ray, options)
        self.actors: list[Any] = []
        self.busy: dict[Any, Any] = {}  # object ref -> the actor computing it

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors, self.busy = [], {}

    def start(self, count: int | None = None) -> None:
        """Start actors up to ``count`` (default: the plan's workers)."""
        wanted = min(self.workers, count or self.workers)
        if len(self.actors) >= wanted:
            return
        actor_class = self.ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS, **self.resources)(ShardWorker)
        here = (os.getcwd(), [p for p in sys.path if p])  # relative paths and python: generators resolve as here
        self.actors += [actor_class.remote(self.make_worker, *here) for _ in range(wanted - len(self.actors))]

    def run_shards(self, out: Any, *, progress: bool = True) -> list[Shard]:
        """Every shard of the job in ``out`` without a marker, each on the next free actor; the shards run."""
        from tqdm.auto import tqdm

        todo = unfinished_shards(self.ray, self.options, out, self.job)[2]
        if not todo:
            return []
        self.start(len(todo))
        bar = tqdm(total=len(todo), desc=f"{self.job} shards on Ray ({len(self.actors)} workers)", disable=not progress)
        queue, running = list(todo), {}
        try:
            while queue or running:
                while queue and self._free() is not None:
                    shard = queue.pop(0)
                    running[self.submit("__call__", shard)] = shard
                ready = self.wait_one(list(running))
                shard = running.pop(ready)
                try:
                    self.ray.get(ready)
                except self.ray.exceptions.RayActorError as exc:
                    why = " ".join(str(exc).split())[:200]
                    raise InputError(
                        f"shard {shard}: its Ray worker died {RESTARTS + 1} times ({why}); the shards done are "
                        "kept: run the command again to continue"
                    ) from None
                except Exception as exc:  # the job's own error (a bad input) reaches the user as one line
                    found = job_error(exc)
                    if found is not None:
                        raise type(found)(f"shard {shard}: {found}") from None
                    raise
                bar.update(1)
        finally:
            bar.close()
        return todo

    def _free(self) -> Any:
        busy = {id(actor) for actor in self.busy.values()}
        return next((actor for actor in self.actors if id(actor) not in busy), None)

    def submit(self, method: str, *args: Any) -> Any:
        """``method`` of the worker object called with ``args`` on a free actor (waiting for one if all are
        busy); returns the object ref. Ray retries it on a restarted actor if the actor dies. Actors are
        started only when there are none (never more than the shards needed: each may hold a GPU's model)."""
        if not self.actors:
            self.start()
        actor = self._free()
        while actor is None:
            self.wait_one(list(self.busy))
            actor = self._free()
        ref = actor.call.remote(method, *args)
        self.busy[ref] = actor
        return ref

    def wait_one(self, refs: list[Any]) -> Any:
        """The first of ``refs`` to finish; its actor is free again (its result is still to be got)."""
        ready, _ = self.ray.wait(refs, num_returns=1)
        self.busy.pop(ready[0], None)
        return ready[0]


def job_error(exc: BaseException) -> GenauditError | None:
    """The job's own error (a bad input, missing weights) inside what Ray raised, as a fresh error of the
    same class, or None. Ray wraps it (``cause``, ``__cause__``) in a class that is also a subclass of the
    error's own (its text the whole remote traceback), so a wrapper is opened rather than taken; Ray Data
    keeps only its traceback's text, so the ``audit.errors.<Class>: <message>`` line is looked for there
    too."""
    import audit.errors

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, GenauditError) and getattr(error, "cause", None) is None:
            return type(error)(_RETRY_NOTE.sub("", str(error)))
        stack += [getattr(error, "cause", None), error.__cause__, error.__context__]
    for name, message in reversed(_ERROR_LINE.findall(str(exc))):
        kind = getattr(audit.errors, name, None)
        if isinstance(kind, type) and issubclass(kind, GenauditError):
            return kind(message.strip())
    return None


def unfinished_shards(ray: Any, options: RayOptions, out: Any, job: str) -> tuple[int, dict[str, float], list[Shard]]:
    """(workers, each worker's resources, the shards of ``job`` in ``out`` without a marker) for a Ray run."""
    workers, resources = plan(ray, options)
    n = shard_count(out, job, options.shards or SHARDS_PER_WORKER * workers, explicit=bool(options.shards))
    todo = [s for s in all_shards(n) if not ShardMarker(out, job, s).done()]
    if not todo:
        log.info("every one of the %d shards of %s is already done", n, job)
    return workers, resources, todo


def shard_count(out: Any, job: str, wanted: int, *, explicit: bool = False) -> int:
    """How many shards the Ray run of ``job`` in ``out`` is cut into: the count an earlier (interrupted) run
    chose, so that its finished shards count on a rerun with another number of workers; else ``wanted``.
    An ``explicit`` (``--ray-shards``) count the earlier run overrides is warned about, not silently lost."""
    import json
    from pathlib import Path

    from audit.atomic import write_json_atomic
    from audit.scale.shards import shard_folder

    path = shard_folder(Path(out), job) / "ray-plan.json"
    try:
        n = int(json.loads(path.read_text(encoding="utf-8"))["shards"])
        if n >= 1:
            if explicit and n != wanted:
                log.warning(
                    "--ray-shards %d ignored: this run of %s was cut into %d shards (%s), kept so that finished "
                    "shards count; delete %s to cut it anew",
                    wanted,
                    job,
                    n,
                    path,
                    path.parent,
                )
            return n
    except (OSError, ValueError, KeyError, TypeError):
        pass
    write_json_atomic(path, {"shards": wanted})
    return wanted


class ShardWorker:
    """One Ray actor: the job's models built once, then shard after shard. It works in the driver's folder
    with the driver's import path, so relative paths (``--out run``) and ``python:`` generators mean the
    same as on the driver (on a cluster: where the shared filesystem is mounted at the same path)."""

    def __init__(self, make_worker: Callable[[], Callable[[Shard], Any]], cwd: str, paths: list[str]) -> None:
        if os.path.isdir(cwd):
            os.chdir(cwd)
        sys.path[:0] = [p for p in paths if p not in sys.path]
        self.work = make_worker()

    def call(self, method: str, *args: Any) -> Any:
        """The worker object's ``method`` (``"__call__"`` runs a shard)."""
        return getattr(self.work, method)(*args)

    def pid(self) -> int:
        return os.getpid()


# ------------------------------------------------------------------------------------------------ the audit


def record_on_ray(
    options: RayOptions,
    spec: str,
    out: Any,
    *,
    backend: str,
    nsfw: bool,
    records_name: str,
    columns: Any = None,
    progress: bool = True,
    caption_model: str | None = "embedded",
) -> list[Shard]:
    """Record every audit shard of ``spec`` on Ray Data (:mod:`audit.scale.ray_data_audit`); the caller
    then merges with :func:`audit.dataset.run.run_records`."""
    from pathlib import Path

    from audit.atomic import output_folder
    from audit.dataset.run import adopt_identity, dataset_items, records_identity
    from audit.scale.ray_data_audit import record_with_ray_data

    out = output_folder(out)
    dataset_items(spec, columns)  # a bad source is one error here, before Ray starts
    identity = records_identity(spec, backend, nsfw, columns, caption_model)
    job = Path(records_name).stem
    adopt_identity(out / f"{job}.run.json", identity, what="an audit")
    return record_with_ray_data(options, spec, out, backend=backend, nsfw=nsfw, job=job, columns=columns,
                                progress=progress, caption_model=caption_model)  # fmt: skip
