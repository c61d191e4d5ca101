"""Record a batch of the tiny counting task with slow scripted models (for crash tests).

    python tests/scripts/record_batch.py TASK_FILE DB --runs N --concurrency C --delay S --steps K

Prints ``FINISHED <run_id> <slot_key> <status>`` (flushed) as each run ends, so a test
can SIGKILL this process mid-batch knowing which runs were already durable, then run
it again to resume the same batch.
"""

from __future__ import annotations

import argparse
import sys
import threading

from recorder_fakes import fake_factory

from recorder.batch import BatchEvent, RecordOptions, record


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("task")
    parser.add_argument("db")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", default="crash-test")
    args = parser.parse_args()

    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:  # events come from many threads: one whole line at a time
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_event(event: BatchEvent) -> None:
        if event.kind == "finished" and event.run is not None and event.slot is not None:
            say(f"FINISHED {event.run.id} {event.slot.key} {event.run.status}")
        elif event.kind == "planned":
            say(f"PLANNED {event.total} {event.skipped}")

    options = RecordOptions(
        runs=args.runs, models=("fake-root",), concurrency=args.concurrency, batch=args.batch
    )
    result = record(
        args.task,
        db=args.db,
        options=options,
        on_event=on_event,
        lm_factory=fake_factory(args.steps, args.delay),
    )
    say(f"DONE {len(result.runs)} {result.skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
