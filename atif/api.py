"""Operations that compose layers: upload = read (and convert) inputs, then store them.

Exported as ``atif.upload``; the store itself knows no runner format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atif.progress import ProgressCallback
from atif.store import Store, UploadResult

__all__ = ["upload"]


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
) -> UploadResult:
    """Store the trials found in ``sources``: converted output, ATIF files, or raw runner output.

    Raw runner output is converted on the fly (:func:`atif.adapters.sources.read_sources`),
    then everything goes through :meth:`Store.ingest` with these options. ``store`` is an open
    :class:`Store`, or the path of one to open (and close again); None opens ``$ATIF_DB`` or
    ``./atif.duckdb``. Bad inputs become ``errors`` of the result; everything valid is stored.
    ``task`` / ``task_from`` (a JMESPath expression on the input) name the task of raw runner
    output, as ``atif convert --task/--task-from`` does.
    """
    from atif.adapters.sources import read_sources
    from atif.store.ingest import KnownInputs

    # Lines of a trials file stored before are recognised by their bytes and not parsed again.
    known = KnownInputs()
    paths = [Path(sources)] if isinstance(sources, (str, os.PathLike)) else [Path(s) for s in sources]
    target = store if isinstance(store, Store) else Store(store)
    try:
        return target.ingest(
            read_sources(paths, task=task, task_from=task_from, known=known),
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
        if target is not store:
            target.close()
