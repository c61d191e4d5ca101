"""Recording runs as they happen: trace values in, durable rows out, one iteration at a time.

The batch runner hands values (:class:`~rlmine.trace.Run`, :class:`~rlmine.trace.Iteration`,
:class:`~rlmine.trace.LLMCall`, :class:`~rlmine.trace.StepLabel`, a finished
:class:`~rlmine.trace.Trace`) to a :class:`RunRecorder`; it turns them into rows here
(:mod:`rlmine.store._rows`) and appends them to its spool (:mod:`rlmine.store._spool`), so
each one is on disk when the call returns and in the database within ``flush_interval_s``.
The recorder never names a table or a column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rlmine.store._rows import call_row, iteration_rows, label_row, run_row, trace_rows
from rlmine.store._spool import SpoolWriter
from rlmine.trace import Iteration, LLMCall, Run, StepLabel, Trace

if TYPE_CHECKING:
    from rlmine.store import Store


class RunRecorder:
    """Durable, thread-safe recording of many runs into one store (one spool file per process).

    Call :meth:`close` when done (in a ``finally``): it moves what is left into the database.
    """

    def __init__(self, store: Store, *, flush_interval_s: float = 0.5) -> None:
        self._spool = SpoolWriter(store, flush_interval_s=flush_interval_s)

    def run(self, run: Run) -> None:
        """The run's row as it stands (started, or ended without a trace, e.g. crashed)."""
        self._spool.write({"runs": [run_row(run)]})

    def iteration(
        self,
        iteration: Iteration,
        calls: Sequence[LLMCall] = (),
        labels: Sequence[StepLabel] = (),
        *,
        run: Run | None = None,
    ) -> None:
        """One finished iteration with its code blocks, LLM calls and step labels, and the
        run's updated row when given (so a reader sees its progress)."""
        rows = {
            **iteration_rows(iteration),
            "llm_calls": [call_row(c) for c in calls],
            "step_labels": [label_row(s) for s in labels],
        }
        if run is not None:
            rows["runs"] = [run_row(run)]
        self._spool.write(rows)

    def trace(self, trace: Trace) -> None:
        """A finished run whole (it replaces what its iterations wrote, key by key)."""
        self._spool.write(trace_rows(trace))

    def flush(self) -> int:
        """Move what is spooled into the database now; returns the rows moved."""
        return self._spool.flush()

    def close(self) -> None:
        self._spool.close()
