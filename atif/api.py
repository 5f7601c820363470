"""Operations that compose layers: upload = read (and convert) inputs, then store them.

Exported as ``atif.upload``; the store itself knows no runner format.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from atif.progress import ProgressCallback
from atif.schema.parallel import OrderedPool, worker_count
from atif.store import Store, UploadResult

__all__ = ["upload"]

_PRELOAD = ("atif.adapters.sources", "atif.store.ingest")
_MIN_LINES = 200  # lines of a block to read before worker processes pay for their start


def _read_and_prepare(epoch: int | None, job: Any) -> Any:
    """In a worker process: read one trials-file line and derive from it everything the store needs."""
    from atif.adapters.sources import read_line
    from atif.store.ingest import prepare_converted

    return prepare_converted(read_line(job), epoch)


class _LineReader:
    """Reads trials-file lines in worker processes once a block is big enough to pay for them.

    The workers read, parse, identify, validate and flatten each trial; this process then only
    checks, batches and writes. Blocks of fewer lines than a full block, and everything when one
    worker is asked for, are read here.
    """

    def __init__(self, workers: int, epoch: int | None) -> None:
        self.workers = workers
        self.epoch = epoch
        self.pool: OrderedPool | None = None

    def __call__(self, jobs: list[Any]) -> Iterable[Any]:
        from atif.adapters.sources import read_line
        from atif.trial import Unchanged

        todo = sum(1 for j in jobs if not isinstance(j, Unchanged))
        if self.pool is None and (self.workers <= 1 or todo < _MIN_LINES):
            return map(read_line, jobs)
        if self.pool is None:
            # forkserver: this process holds DuckDB's threads, which a forked child must not inherit.
            self.pool = OrderedPool(self.workers, start_method="forkserver", preload=_PRELOAD)
        return self.pool.map(functools.partial(_read_and_prepare, self.epoch), jobs, chunk_size=8)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def upload(
    sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    experiment: str,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    collection: str | None = None,
    criteria: dict[str, Any] | None = None,
    tasks_file: str | os.PathLike[str] | None = None,
    epoch: int | None = None,
    create_missing_tasks: bool = False,
    replace: bool = False,
    batch_size: int = 500,
    task: str | None = None,
    task_from: str | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> UploadResult:
    """Store the trials found in ``sources``: converted output, ATIF files, or raw runner output.

    Raw runner output is converted on the fly (:func:`atif.adapters.sources.read_sources`),
    then everything goes through :meth:`Store.ingest` with these options. ``store`` is an open
    :class:`Store`, or the path of one to open (and close again); None opens ``$ATIF_DB`` or
    ``./atif.duckdb``. Bad inputs become ``errors`` of the result; everything valid is stored.
    ``task`` / ``task_from`` (a JMESPath expression on the input) name the task of raw runner
    output, as ``atif convert --task/--task-from`` does.

    ``workers`` processes read the lines of trials files (parse, identify, validate, flatten);
    None or 0: ``$ATIF_WORKERS``, else one per usable core (at most 8), used once a file has
    enough lines left to pay for them. Lines stored before are recognised by their bytes and
    not read again. The outcome does not depend on the number of workers.
    """
    from atif.adapters.sources import read_sources
    from atif.store.ingest import KnownInputs

    # Lines of a trials file stored before are recognised by their bytes and not parsed again.
    known = KnownInputs()
    reader = _LineReader(worker_count(None, workers), epoch)
    paths = [Path(sources)] if isinstance(sources, (str, os.PathLike)) else [Path(s) for s in sources]
    target = store if isinstance(store, Store) else Store(store)
    try:
        return target.ingest(
            read_sources(paths, task=task, task_from=task_from, known=known, line_reader=reader),
            experiment,
            collection=collection,
            criteria=criteria,
            tasks_file=tasks_file,
            epoch=epoch,
            create_missing_tasks=create_missing_tasks,
            replace=replace,
            batch_size=batch_size,
            sources=[str(p) for p in paths],
            on_progress=on_progress,
            known_inputs=known,
        )
    finally:
        reader.close()
        if target is not store:
            target.close()
