"""Batch recording: many RLM runs of one task, in parallel, durable and resumable.

A batch is the cross product instances x models x temperatures x seeds x
repeats. Each element is a *slot* with a stable key; a batch's name is derived
from the task and the plan, so running the same command again resumes it:
slots with a finished run are skipped, runs left ``running`` by a dead process
(stale) or ``cancelled`` are deleted and run again. Every finished iteration
goes to the store's :class:`~rlmine.store.RunRecorder` at once (durable on disk
when it returns); a crash of one run is recorded as an ``error`` run and never
stops the batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from recorder.engine import EngineOptions
from recorder.executors import Executor, LMPlan, LocalExecutor, RunRequest, make_executor
from recorder.lm.base import LM
from recorder.lm.registry import make_lm
from recorder.tasks import InstanceSpec, TaskSpec, load_task
from rlmine.errors import UserError
from rlmine.ids import new_id
from rlmine.scoring import score_run
from rlmine.store import (
    InstanceRow,
    RunRecorder,
    Store,
    batch_runs,
    claim_slots,
    current_owner,
    delete_runs,
    owner_alive,
    release_claims,
    upsert_batch,
    upsert_instances,
    upsert_task,
)
from rlmine.trace import TERMINAL_STATUSES, Iteration, LLMCall, Run, StepLabel, Trace

log = logging.getLogger(__name__)

LMFactory = Callable[..., LM]


@dataclass(frozen=True)
class RecordOptions:
    """What to record. Defaults record one simulator run per training instance."""

    runs: int = 1  # repeats of every (instance, model, temperature, seed)
    models: tuple[str, ...] = ("sim",)
    sub_model: str | None = None  # default: the root model itself
    temperatures: tuple[float | None, ...] = (None,)
    seeds: tuple[int, ...] = (0,)
    split: str | None = "train"
    instance_ids: tuple[str, ...] = ()
    concurrency: int = 4
    batch: str | None = None
    budget: dict[str, Any] = field(default_factory=dict)  # overrides of the task's budget
    api_base: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    lm_options: dict[str, Any] = field(default_factory=dict)  # e.g. simulator latency
    flush_interval_s: float = 0.5


@dataclass(frozen=True, slots=True)
class Slot:
    key: str
    instance: InstanceSpec
    model: str
    temperature: float | None
    seed: int
    repeat: int


@dataclass(frozen=True)
class BatchEvent:
    """``skipped``: another recorder claimed the slot first (it runs it, not us)."""

    kind: Literal["planned", "started", "finished", "skipped"]
    slot: Slot | None = None
    run: Run | None = None
    total: int = 0
    skipped: int = 0


@dataclass
class BatchResult:
    batch_id: str
    batch_name: str
    task_id: str
    planned: int
    skipped: int
    runs: list[Run] = field(default_factory=list)
    cancelled: bool = False
    elsewhere: int = 0  # slots another recorder claimed while this one ran

    @property
    def failed(self) -> int:
        return sum(run.status == "error" for run in self.runs)

    @property
    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs:
            out[run.status] = out.get(run.status, 0) + 1
        return out


def plan_slots(task: TaskSpec, opts: RecordOptions) -> list[Slot]:
    instances = task.instances_in(opts.split)
    if opts.instance_ids:
        instances = [task.instance(i) for i in opts.instance_ids]
    slots = []
    for inst in instances:
        for model in opts.models:
            for temperature in opts.temperatures:
                for base_seed in opts.seeds:
                    for r in range(opts.runs):
                        seed = base_seed + r
                        key = f"{inst.id}|{model}|{temperature}|{seed}"
                        slots.append(Slot(key, inst, model, temperature, seed, r))
    return slots


def default_batch_name(task: TaskSpec, opts: RecordOptions) -> str:
    plan = {
        "runs": opts.runs,
        "models": opts.models,
        "sub": opts.sub_model,
        "t": opts.temperatures,
        "seeds": opts.seeds,
        "split": opts.split,
        "ids": opts.instance_ids,
        "budget": opts.budget,
    }
    digest = hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{task.name}-{digest}"


class RecordingObserver:
    """Engine observer: every event goes to the store's recorder as it happens."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder
        self.run: Run | None = None

    def run_started(self, run: Run) -> None:
        self.run = run
        self.recorder.run(run)

    def iteration_finished(
        self, iteration: Iteration, calls: Sequence[LLMCall], labels: Sequence[StepLabel]
    ) -> None:
        if self.run is not None:
            self.run = replace(self.run, n_iterations=iteration.index + 1)
        self.recorder.iteration(iteration, calls, labels, run=self.run)


def _prepare(
    store: Store, task: TaskSpec, opts: RecordOptions, name: str, slots: Sequence[Slot]
) -> tuple[str, str, set[str]]:
    """Write the catalogue; return (task_id, batch_id, slot keys already done)."""
    with store.writer() as con:
        task_id = upsert_task(
            con,
            name=task.name,
            spec=task.spec_dict(),
            question=task.question,
            checker=task.checker_name,
            source_path=str(task.source),
        )
        upsert_instances(
            con,
            task_id,
            [
                InstanceRow(
                    id=i.id,
                    split=i.split,
                    question=i.question_text(task),
                    expected=i.expected,
                    context=i.context_ref(task),
                )
                # the planned instances: --instance may pick one outside --split
                for i in {s.instance.id: s.instance for s in slots}.values()
            ],
        )
        batch_id = upsert_batch(
            con,
            name=name,
            task_id=task_id,
            params={
                "runs": opts.runs,
                "models": list(opts.models),
                "sub_model": opts.sub_model,
                "temperatures": list(opts.temperatures),
                "seeds": list(opts.seeds),
                "split": opts.split,
                "budget": opts.budget,
            },
        )
        done: set[str] = set()
        retry: list[str] = []
        for slot_run in batch_runs(con, batch_id):
            key = slot_run.slot_key or ""
            if slot_run.status in TERMINAL_STATUSES:
                if key in done:
                    retry.append(slot_run.run_id)  # never keep two finished runs for one slot
                done.add(key)
            elif slot_run.status == "running" and owner_alive(slot_run.owner):
                done.add(key)  # another live recorder is on it
            else:
                retry.append(slot_run.run_id)
        delete_runs(con, retry)
    return task_id, batch_id, done


class SlotClaims:
    """Hands this recorder's threads their next slot, claiming slots in the database a few at
    a time (:mod:`rlmine.store._claims`): a slot another recorder claimed first is skipped."""

    def __init__(
        self,
        store: Store,
        batch_id: str,
        slots: Sequence[Slot],
        chunk: int,
        make_run: Callable[[Slot], Run],
        on_skip: Callable[[Slot], None],
    ) -> None:
        self._store, self._batch_id, self._chunk, self._make_run = store, batch_id, chunk, make_run
        self._on_skip = on_skip
        self._pending = deque(slots)
        self._claimed: deque[tuple[Slot, Run]] = deque()
        self._lock = threading.Lock()
        self.elsewhere: list[Slot] = []

    def next(self) -> tuple[Slot, Run] | None:
        with self._lock:
            while not self._claimed and self._pending:
                chunk = [self._pending.popleft() for _ in range(min(self._chunk, len(self._pending)))]
                runs = {slot.key: (slot, self._make_run(slot)) for slot in chunk}
                with self._store.writer() as con:
                    won = set(claim_slots(con, self._batch_id, {k: r for k, (_s, r) in runs.items()}))
                self._claimed.extend(runs[key] for key in runs if key in won)
                for slot in chunk:
                    if slot.key not in won:
                        self.elsewhere.append(slot)
                        self._on_skip(slot)
            return self._claimed.popleft() if self._claimed else None

    def give_back(self, item: tuple[Slot, Run]) -> None:
        """A claimed slot this recorder will not start after all (released at the end)."""
        with self._lock:
            self._claimed.appendleft(item)

    def release_unstarted(self) -> None:
        """Delete the claims of slots this recorder will not start (it was cancelled)."""
        with self._lock:
            ids = [run.id for _slot, run in self._claimed]
            self._claimed.clear()
        if ids:
            with self._store.writer() as con:
                release_claims(con, ids)


def _score(task: TaskSpec, inst: InstanceSpec, trace: Trace) -> Run:
    run = trace.run
    if run.status == "cancelled":
        return run
    try:
        checker = task.make_checker()
    except Exception as exc:  # a broken custom checker must not lose the run
        return replace(run, metadata={**run.metadata, "checker_error": f"{type(exc).__name__}: {exc}"})
    return score_run(run, checker, inst.expected, task.checker_name)


def _split_counts(spec: TaskSpec) -> str:
    counts = Counter(inst.split for inst in spec.instances)
    return ", ".join(f"{split} ({n})" for split, n in counts.items()) or "none: the task lists no instances"


def record(
    task: TaskSpec | str | Path,
    *,
    db: Store | str | Path,
    options: RecordOptions | None = None,
    on_event: Callable[[BatchEvent], None] | None = None,
    cancel: threading.Event | None = None,
    lm_factory: LMFactory = make_lm,
    executor: Executor | str | None = None,
) -> BatchResult:
    """Record a batch of runs of ``task`` into the database ``db``.

    ``executor`` says where runs execute: ``"local"`` (the default: threads of this process),
    ``"ray"`` (a local Ray, or ``$RAY_ADDRESS``) or an executor object such as
    ``RayExecutor(address="auto")`` (see :mod:`recorder.executors` and docs/scale-out.md);
    everything else — claims, recording, resume — is the same.
    """
    opts = options or RecordOptions()
    spec = task if isinstance(task, TaskSpec) else load_task(Path(task))
    # Preflight: everything that can be checked is checked before anything is written
    # (a bad value must not leave a task, instances or an empty batch behind).
    slots = plan_slots(spec, opts)
    if not slots:
        raise UserError(
            f"nothing to record: task {spec.name!r} has no {opts.split} instances",
            f"--split all, or one of: {_split_counts(spec)}",
        )
    lm_kw = {"api_base": opts.api_base, "api_key_env": opts.api_key_env, **opts.lm_options}
    executor = make_executor(executor) if isinstance(executor, str) else executor or LocalExecutor()
    executor.open(LMPlan(opts.models, opts.sub_model, lm_kw, lm_factory))
    try:
        store = db if isinstance(db, Store) else Store.open(Path(db), create=True)
    except BaseException:
        executor.close()
        raise
    cancel = cancel or threading.Event()
    name = opts.batch or default_batch_name(spec, opts)
    task_id, batch_id, done = _prepare(store, spec, opts, name, slots)
    todo = [s for s in slots if s.key not in done]
    result = BatchResult(batch_id, name, task_id, planned=len(slots), skipped=len(slots) - len(todo))
    emit = on_event or (lambda _e: None)
    emit(BatchEvent("planned", total=len(slots), skipped=result.skipped))
    if not todo:
        executor.close()
        return result

    budget = spec.budget.merged(opts.budget)
    owner = current_owner()
    lock = threading.Lock()
    recorder = RunRecorder(store, flush_interval_s=opts.flush_interval_s)

    def make_run(slot: Slot) -> Run:
        inst = slot.instance
        return Run(
            id=new_id(),
            engine="rlmine",
            status="running",
            task_id=task_id,
            instance_id=inst.id,
            batch_id=batch_id,
            slot_key=slot.key,
            owner=owner,
            root_model=slot.model,
            expected=json.dumps(inst.expected, ensure_ascii=False, default=str),
            params={"repeat": slot.repeat, "split": inst.split},
        )

    claims = SlotClaims(
        store,
        batch_id,
        todo,
        max(4, opts.concurrency),
        make_run,
        lambda slot: emit(BatchEvent("skipped", slot=slot)),
    )

    def one(slot: Slot, template: Run) -> None:
        emit(BatchEvent("started", slot=slot))
        inst = slot.instance
        observer = RecordingObserver(recorder)
        try:
            template = replace(template, context=inst.context_ref(spec))
            request = RunRequest(
                inst.question_text(spec),
                inst.context_path(spec),
                slot.model,
                EngineOptions(budget=budget, temperature=slot.temperature, seed=slot.seed),
                template,
            )
            trace = executor.run(request, observer, cancel)
            final = replace(trace, run=_score(spec, inst, trace))
        except Exception as exc:  # a crash of one run never stops the batch
            log.exception("run %s crashed", template.id)
            started = observer.run or template
            final = Trace(
                run=replace(
                    started,
                    status="error",
                    error=f"{type(exc).__name__}: {exc}",
                    root_model=slot.model,
                    score=0.0,
                    correct=False,
                )
            )
            recorder.run(final.run)
        else:
            recorder.trace(final)
        with lock:
            result.runs.append(final.run)
        emit(BatchEvent("finished", slot=slot, run=final.run))

    def worker() -> None:
        while not cancel.is_set():
            item = claims.next()
            if item is None:
                return
            if cancel.is_set():
                claims.give_back(item)
                return
            one(*item)

    try:
        workers = max(1, min(opts.concurrency, len(todo)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlm-run") as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()
    finally:
        claims.release_unstarted()
        recorder.close()
        executor.close()
    result.cancelled = cancel.is_set()
    result.elsewhere = len(claims.elsewhere)
    return result
