"""Operations that compose layers: upload = read (and convert) inputs, then store them; fitting
the judge's thresholds = calibration pairs (report) + the fit (judge) + the criterion set (store).

Exported as ``atif.upload`` and ``atif.fit_thresholds``; the store itself knows no runner format.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from atif.progress import ProgressCallback
from atif.schema.parallel import OrderedPool, worker_count
from atif.store import Store, UploadResult

__all__ = ["fit_thresholds", "upload"]

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
    worker is asked for, are read here. The workers' fork server takes about half a second to
    start (a fresh interpreter importing the store): it starts in the background, and this
    process reads the lines itself until the workers run, then hands them the rest.
    """

    def __init__(self, workers: int, epoch: int | None) -> None:
        self.workers = workers
        self.epoch = epoch
        self.pool: OrderedPool | None = None
        self.ready = threading.Event()

    def __call__(self, jobs: list[Any]) -> Iterable[Any]:
        from atif.adapters.sources import read_line
        from atif.trial import Unchanged

        todo = sum(1 for j in jobs if not isinstance(j, Unchanged))
        if self.pool is None and (self.workers <= 1 or todo < _MIN_LINES):
            return map(read_line, jobs)
        if self.pool is None:
            # forkserver: this process holds DuckDB's threads, which a forked child must not inherit.
            self.pool = OrderedPool(self.workers, start_method="forkserver", preload=_PRELOAD)
            threading.Thread(target=self._start, args=(self.pool,), name="atif-workers-start", daemon=True).start()
        if self.ready.is_set():
            return self._map(jobs)
        return self._while_starting(jobs)

    def _start(self, pool: OrderedPool) -> None:
        try:
            pool.start()
        except Exception:  # noqa: BLE001 - a pool that cannot start fails again, and is reported, in map()
            pass
        finally:
            self.ready.set()

    def _map(self, jobs: list[Any]) -> Iterable[Any]:
        assert self.pool is not None
        return self.pool.map(functools.partial(_read_and_prepare, self.epoch), jobs, chunk_size=8)

    def _while_starting(self, jobs: list[Any]) -> Iterator[Any]:
        """Lines read here while the workers start, then the rest by the workers, in order."""
        from atif.adapters.sources import read_line

        i = 0
        while i < len(jobs) and not self.ready.is_set():
            yield read_line(jobs[i])
            i += 1
        if i < len(jobs):
            yield from self._map(jobs[i:])

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


def fit_thresholds(
    store: Store,
    experiment: str,
    *,
    against: str = "human",
    reference: str | None = None,
    reference_file: str | os.PathLike[str] | None = None,
    apply: bool = False,
) -> dict[str, Any]:
    """Fit each criterion's ``p_yes`` threshold on reference labels and keep it with the criterion set.

    The labels are what ``atif calibrate`` compares with (the experiment's own ``against``
    ratings, a reference experiment, or a JSONL file); each labelled judge verdict that carries
    a ``p_yes`` is one point, and :func:`atif.judge.score.fit_threshold` picks the cut that
    balances TPR and TNR. The fitted threshold is stored (``Store.save_thresholds``) and used by
    the next evaluation where the criteria file sets no ``threshold`` (the file's value wins).
    ``apply`` re-decides the experiment's stored scored judge verdicts with the threshold in
    force, keeping each replaced verdict in the rating history.

    Returns ``criteria`` (label -> threshold, counts, rates before and after on these labels,
    ``in_force``), ``problems`` (one line per criterion that could not be fitted) and
    ``applied`` (the re-decided ratings, with ``apply``). Raises :class:`InputError` when no
    criterion could be fitted.
    """
    import time

    from atif.errors import InputError
    from atif.judge.score import DEFAULT_THRESHOLD, decide, fit_threshold
    from atif.report.calibrate import calibration_pairs

    pairs, ref_desc = calibration_pairs(store, experiment, against=against, reference=reference,
                                        reference_file=None if reference_file is None else Path(reference_file))
    pairs = [p for p in pairs if p["judge"] in ("YES", "NO")]
    source = f"the {against} ratings of " + (f"file {ref_desc['file']}" if "file" in ref_desc
                                            else f"experiment {ref_desc['experiment']}")
    if not pairs:
        raise InputError(f"no judge verdict of experiment {experiment!r} has a label in {source}: nothing to fit")
    criteria = {c["label"]: c for c in store.experiment(experiment)["criteria"]}
    by_label: dict[str, list[dict[str, Any]]] = {}
    for p in pairs:
        by_label.setdefault(p["criterion"], []).append(p)
    out: dict[str, Any] = {}
    problems: list[str] = []
    fits: dict[str, tuple[float, dict[str, Any]]] = {}
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for label, rows in sorted(by_label.items()):
        scored = [(float(p["p_yes"]), p["reference"] == "YES") for p in rows if p["p_yes"] is not None]
        n_yes = sum(1 for _, y in scored if y)
        if not scored:
            problems.append(f"criterion {label!r}: none of its {len(rows)} labelled judge verdicts has a p_yes "
                            "score (the judge model returned no log-probabilities); nothing to fit")
            continue
        if n_yes in (0, len(scored)):
            only = "YES" if n_yes else "NO"
            problems.append(f"criterion {label!r}: all {len(scored)} labels with a score are {only}; "
                            "a threshold needs both YES and NO labels")
            continue
        threshold = fit_threshold(scored)
        assert threshold is not None
        config = criteria.get(label, {}).get("config") or {}
        explicit = config.get("threshold") if isinstance(config.get("threshold"), (int, float)) else None
        current = criteria.get(label, {}).get("threshold")
        after = _rates([(decide(p["p_yes"], p["judge"], threshold), p["reference"])
                        for p in rows if p["p_yes"] is not None])
        entry = {
            "threshold": threshold, "n_labels": len(rows), "n_scored": len(scored), "n_yes": n_yes,
            "n_no": len(scored) - n_yes,
            "before": _rates([(p["judge"], p["reference"]) for p in rows if p["p_yes"] is not None]),
            "before_threshold": DEFAULT_THRESHOLD if current is None else current,
            "after": after,
            "file_threshold": explicit, "in_force": explicit if explicit is not None else threshold,
        }
        out[label] = entry
        fits[label] = (threshold, {"against": against, "reference": ref_desc, "n_scored": len(scored),
                                   "n_yes": n_yes, "n_no": len(scored) - n_yes, "fitted_at": when,
                                   "balanced_accuracy": after["balanced_accuracy"]})
    if not fits:
        raise InputError("; ".join(problems))
    store.save_thresholds(experiment, fits)
    applied = None
    if apply:
        changed = store.redecide(experiment, {label: e["in_force"] for label, e in out.items()})
        applied = {"n_changed": len(changed), "to_yes": sum(1 for c in changed if c["new"] == "YES"),
                   "to_no": sum(1 for c in changed if c["new"] == "NO"), "changed": changed}
    return {"experiment": experiment, "against": against, "reference": ref_desc, "criteria": out,
            "problems": problems, "applied": applied}


def _rates(pairs: Sequence[tuple[str, str]]) -> dict[str, float | None]:
    """TPR, TNR and balanced accuracy of (verdict, label) pairs; YES is the positive class."""
    pos = [v for v, label in pairs if label == "YES"]
    neg = [v for v, label in pairs if label == "NO"]
    tpr = sum(1 for v in pos if v == "YES") / len(pos) if pos else None
    tnr = sum(1 for v in neg if v == "NO") / len(neg) if neg else None
    ba = (tpr + tnr) / 2 if tpr is not None and tnr is not None else None
    return {"tpr": tpr, "tnr": tnr, "balanced_accuracy": ba}
