"""The run context: where a run's chunks run, and how (backend, retries, threads, progress).

Where the chunks run is one of four cluster kinds, declared the way dask-jobqueue declares
its job kinds: a small frozen class per kind whose class attributes say what the kind is
(``remote``: its workers resolve ``auto``/``numba``/``cupy`` themselves; ``connect_first``:
connected before any store is touched, so a wrong address leaves nothing on disk) and whose
methods do what differs between kinds:

* :meth:`ClusterKind.check`: asked before the store is touched (SLURM: does it accept the
  profile's worker job?);
* :meth:`ClusterKind.open`: a context manager yielding ``(client, watch)``, where ``watch``
  is the SLURM job keeper to call about once a second (None elsewhere); leaving it closes
  what it started;
* :meth:`ClusterKind.expected_threads`: the worker threads the cluster is meant to reach
  before they join (the submission window's floor);
* :meth:`ClusterKind.worker_memory`: one worker's bytes and how to name it, for the memory
  check before anything starts (None: not known, or the workers run on GPUs).

The kinds are :class:`Local` (a local cluster: one single-threaded worker per core, or one
per GPU for ``cupy``), :class:`Scheduler` (a running Dask scheduler's address),
:class:`Slurm` (worker jobs of a dask-jobqueue profile) and :class:`Attached` (a client the
caller made and keeps, e.g. in a notebook or a test).

A :class:`RunContext` holds a kind and the run's settings, resolves the backend once, and
opens the cluster when a run first needs it (``with ctx.opened(): ...`` keeps it open over
several runs: the frames of a zoom share one). The run modes (:mod:`.execute`,
:mod:`.refine`, :mod:`.zoom`) are strategies over it; ``sweep run`` / ``sweep zoom`` only
parse their flags into one.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from pipeline.errors import UsageError
from pipeline.gpu.backend import BACKENDS, backend_info, resolve_backend
from pipeline.run.submit import WindowPolicy
from pipeline.run.tasks import TaskSettings

if TYPE_CHECKING:
    from pipeline.slurm.cluster import SlurmOptions
    from pipeline.spec.sweep import SweepSpec

__all__ = [
    "Attached",
    "ClusterKind",
    "Local",
    "RunContext",
    "Scheduler",
    "Slurm",
    "cluster_kind",
]

Watch = Callable[[], None]
"""The SLURM job keeper: called about once a second while tasks run; may raise to stop."""


class ClusterKind:
    """Where a run's chunks run (the module's four kinds)."""

    remote: ClassVar[bool] = True
    """Its workers resolve ``auto``/``numba``/``cupy`` themselves (the driver is often a
    login node without a GPU); a local cluster resolves the backend here."""

    connect_first: ClassVar[bool] = False
    """Connected when the context opens, before any store is touched."""

    adaptive: bool = False
    """Scaled by Dask's adaptive scaling (the window then holds queued work for it)."""

    def check(self) -> None:
        """Raise before any store is touched when the cluster cannot work (default: nothing)."""

    def open(
        self, backend: str, say: Callable[[str], None]
    ) -> AbstractContextManager[tuple[Any, Watch | None]]:
        """A context manager yielding ``(client, watch)`` for workers of ``backend``."""
        raise NotImplementedError

    def expected_threads(self, backend: str) -> int:
        """The worker threads the cluster is meant to have, before they join (0: unknown)."""
        return 0

    def worker_memory(self, backend: str, client: Any = None) -> tuple[float | None, str]:
        """One worker's memory in bytes (None: unknown or not checked) and how to name it."""
        return None, "a worker"


@dataclass(frozen=True)
class Local(ClusterKind):
    """A local cluster: ``workers`` single-threaded worker processes (default one per
    core), or one worker per visible GPU when the backend resolves to ``cupy``."""

    workers: int | None = None
    remote: ClassVar[bool] = False

    @contextlib.contextmanager
    def open(self, backend: str, say: Callable[[str], None]) -> Iterator[tuple[Any, None]]:
        from distributed import Client

        from pipeline.run.clients import dashboard_available, local_cluster, owned_cluster

        with owned_cluster(local_cluster(self.workers, backend)) as cluster, Client(cluster) as c:
            if dashboard_available():
                say(f"dashboard: {c.dashboard_link}")
            else:
                say("dashboard: install the 'dashboard' extra (bokeh) to get one")
            yield c, None

    def expected_threads(self, backend: str) -> int:
        if self.workers:
            return self.workers
        from dask.system import CPU_COUNT

        return CPU_COUNT if backend != "cupy" else 1

    def worker_memory(self, backend: str, client: Any = None) -> tuple[float | None, str]:
        from pipeline.run.resources import local_worker_memory

        if resolve_backend(backend) == "cupy":
            return None, "a GPU"  # one worker per GPU: the device's memory is what counts
        where = f"a local worker ({self.workers or 'one per core'} workers)"
        return local_worker_memory(self.workers), where


@dataclass(frozen=True)
class Scheduler(ClusterKind):
    """A running Dask scheduler at ``address`` (``dask scheduler`` printed it); its
    workers are the user's."""

    address: str
    connect_first: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise UsageError(
                "scheduler: an empty address; give the address that `dask scheduler` printed "
                "(e.g. tcp://HOST:8786), or leave it out for a local cluster",
                option="scheduler",
            )

    @contextlib.contextmanager
    def open(self, backend: str, say: Callable[[str], None]) -> Iterator[tuple[Any, None]]:
        from pipeline.run.clients import connect_scheduler

        with connect_scheduler(self.address) as c:
            say(f"scheduler {self.address}, dashboard: {c.dashboard_link}")
            yield c, None

    def worker_memory(self, backend: str, client: Any = None) -> tuple[float | None, str]:
        from pipeline.run.resources import client_worker_memory

        if client is None:
            return None, "a worker of the scheduler"
        return client_worker_memory(client), "the smallest worker of the scheduler"


@dataclass(frozen=True)
class Slurm(ClusterKind):
    """Worker jobs on SLURM (:class:`pipeline.slurm.cluster.SlurmOptions`: a profile, a job
    count or adaptive bounds): SLURM is asked first whether it accepts the profile's jobs,
    jobs that SLURM ends midway are replaced, and every job is cancelled at the end."""

    options: SlurmOptions

    @property
    def adaptive(self) -> bool:  # type: ignore[override]
        return self.options.adapt is not None

    def check(self) -> None:
        from pipeline.slurm.cluster import check_submittable

        check_submittable(self.options.profile)

    def open(
        self, backend: str, say: Callable[[str], None]
    ) -> AbstractContextManager[tuple[Any, Watch]]:
        from pipeline.slurm.cluster import slurm_client

        return slurm_client(self.options, say)

    def expected_threads(self, backend: str) -> int:
        cores = int(self.options.profile.options.get("cores", 1) or 1)
        jobs = self.options.adapt[1] if self.options.adapt is not None else self.options.n_jobs
        return jobs * cores

    def worker_memory(self, backend: str, client: Any = None) -> tuple[float | None, str]:
        from pipeline.run.resources import slurm_worker_memory

        profile = self.options.profile
        if backend == "auto" and profile.asks_for_gpu:
            return None, "a GPU"  # GPU jobs resolve auto to cupy: the device's memory counts
        where = f"a worker of SLURM profile {profile.name!r}"
        return slurm_worker_memory(dict(profile.options)), where


@dataclass(frozen=True)
class Attached(ClusterKind):
    """A client the caller made and keeps open (a notebook's, a test's, a SLURM cluster of
    its own with its job keeper ``watch``); the run neither starts nor closes it."""

    client: Any
    watch: Watch | None = None

    @contextlib.contextmanager
    def open(self, backend: str, say: Callable[[str], None]) -> Iterator[tuple[Any, Any]]:
        yield self.client, self.watch

    def worker_memory(self, backend: str, client: Any = None) -> tuple[float | None, str]:
        from pipeline.run.resources import client_worker_memory

        return client_worker_memory(self.client), "the smallest worker of the client"


def cluster_kind(
    *,
    scheduler: str | None = None,
    client: Any = None,
    n_workers: int | None = None,
    slurm: SlurmOptions | None = None,
    watch: Watch | None = None,
) -> ClusterKind:
    """The kind that ``run_sweep``'s keywords name: ``client`` (with its ``watch``) first,
    then ``slurm``, then ``scheduler``, else a local cluster of ``n_workers``."""
    if client is not None:
        return Attached(client, watch)
    if slurm is not None:
        return Slurm(slurm)
    if scheduler:
        return Scheduler(scheduler)
    return Local(n_workers)


_CLUSTER_KEYWORDS = ("scheduler", "client", "n_workers", "slurm", "watch")


@dataclass
class RunContext:
    """Where and how a run computes: the cluster kind and the run's settings.

    ``backend``: ``auto``, ``numpy``, ``numba`` or ``cupy`` (a local cluster resolves it
    here, remote workers each for themselves); ``retries``: extra attempts per chunk before
    it is reported failed; ``threads``: tile threads inside one task (results do not depend
    on it); ``progress``: a bar on stderr (else heartbeat lines); ``log``: where the run's
    lines go (default stderr); ``chunks_per_task``: chunks fused into one task (default:
    from the plan's FLOPs per chunk, :func:`pipeline.run.submit.chunks_per_task`);
    ``memory_check``: check one task's peak memory against a worker's when the context
    opens for a spec (:meth:`check_memory`; the command line's default).
    """

    cluster: ClusterKind = field(default_factory=Local)
    backend: str = "auto"
    retries: int = 2
    threads: int = 1
    progress: bool = True
    log: Callable[[str], None] | None = None
    chunks_per_task: int | None = None
    memory_check: bool = False
    _stack: ExitStack | None = field(default=None, init=False, repr=False, compare=False)
    _live: tuple[Any, Any] | None = field(default=None, init=False, repr=False, compare=False)
    _resolved: tuple[str, dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.chunks_per_task is not None and self.chunks_per_task < 1:
            raise UsageError(
                f"chunks_per_task: value {self.chunks_per_task} must be >= 1",
                option="chunks_per_task",
            )

    @classmethod
    def from_options(cls, **options: Any) -> RunContext:
        """A context from ``run_sweep``'s keywords: the cluster's (``scheduler``,
        ``client``, ``n_workers``, ``slurm``, ``watch``: :func:`cluster_kind`) and this
        class's fields; another name is a ``TypeError``, as for any function."""
        names = {f.name for f in fields(cls) if not f.name.startswith("_")} - {"cluster"}
        unknown = sorted(set(options) - names - set(_CLUSTER_KEYWORDS))
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        kind = cluster_kind(**{k: options.pop(k) for k in _CLUSTER_KEYWORDS if k in options})
        return cls(cluster=kind, **options)

    def say(self, msg: str) -> None:
        """A line of the run's log (stderr unless ``log`` is given)."""
        if self.log is not None:
            self.log(msg)
        else:
            print(msg, file=sys.stderr)

    @property
    def worker_backend(self) -> str:
        """The backend name the tasks get: resolved here for a local cluster; ``auto``,
        ``numba``, ``cupy`` as given for remote workers (each resolves it)."""
        return self._resolve()[0]

    @property
    def provenance(self) -> dict[str, Any]:
        """The backend's provenance for the store's attrs."""
        return self._resolve()[1]

    def _resolve(self) -> tuple[str, dict[str, Any]]:
        if self._resolved is None:
            b = self.backend
            if self.cluster.remote and b in ("auto", "numba", "cupy"):
                self._resolved = b, {"backend": f"{b} (resolved on each worker)"}
            else:
                if self.cluster.remote and b not in BACKENDS:
                    resolve_backend(b)  # the usual error for an unknown name
                name = resolve_backend(b)
                self._resolved = name, backend_info(name)
        return self._resolved

    @contextlib.contextmanager
    def opened(self, spec: SweepSpec | None = None) -> Iterator[RunContext]:
        """Keep the context open over the block, for runs of ``spec``: the backend resolved,
        a scheduler connected, one task's memory checked (with ``memory_check``) and the
        cluster's own check asked, all before any store is touched; other clusters start
        at their first use (:meth:`client`); closed at the end. Re-entered (a zoom's
        frames), it does nothing."""
        if self._stack is not None:
            yield self
            return
        self._resolve()
        with ExitStack() as stack:
            self._stack = stack
            try:
                if self.cluster.connect_first:
                    self.client()
                if self.memory_check and spec is not None:
                    self.check_memory(spec)
                self.cluster.check()
                yield self
            finally:
                self._stack, self._live = None, None

    def client(self) -> tuple[Any, Watch | None]:
        """``(client, watch)``, the cluster opened on first use (inside :meth:`opened`)."""
        if self._live is None:
            if self._stack is None:
                raise RuntimeError("RunContext.client() outside `with context.opened()`")
            cm = self.cluster.open(self.worker_backend, self.say)
            self._live = self._stack.enter_context(cm)
        return self._live

    @property
    def task_settings(self) -> TaskSettings:
        """What each task gets: the workers' backend name, tile threads, attempts."""
        return TaskSettings(self.worker_backend, self.threads, self.retries + 1)

    @property
    def expected_threads(self) -> int:
        """The worker threads the cluster is meant to reach (0 for an attached client)."""
        return self.cluster.expected_threads(self.worker_backend)

    def window_policy(self, adaptive: bool = True) -> WindowPolicy:
        """The submission window's policy (``adaptive``: follow an adaptive cluster)."""
        return WindowPolicy(
            expected_threads=self.expected_threads,
            adaptive=adaptive and self.cluster.adaptive,
        )

    def check_memory(self, spec: SweepSpec) -> None:
        """One task's peak memory against a worker's (:func:`pipeline.run.resources.
        check_task_memory`), before anything starts; not checked for CuPy workers (the
        estimate is the host's) or where the workers' memory is not known."""
        from pipeline.run.resources import check_task_memory

        if self.backend == "cupy":
            return
        client = self._live[0] if self._live is not None else None
        per, where = self.cluster.worker_memory(self.backend, client)
        check_task_memory(spec, per, where)
