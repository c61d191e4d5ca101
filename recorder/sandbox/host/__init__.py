"""The sandbox's host side: code that runs in the recorder's own process.

* :mod:`~recorder.sandbox.host.sandbox` — ``SubprocessSandbox``: start, execute, shutdown,
  timeouts and restarts, serving ``llm_query`` from the cell;
* :mod:`~recorder.sandbox.host.process` — one worker process as the host sees it: spawned,
  or forked through the fork server (with the fds it needs), watched and killed;
* :mod:`~recorder.sandbox.host.forkserver` — the host's end of the fork-server templates
  (the main one, the one whose root is the view, the context ones);
* :mod:`~recorder.sandbox.host.context_share` — leases on context templates by file version;
* :mod:`~recorder.sandbox.host.cgroup` — the per-sandbox pids cgroup.

Code under :mod:`recorder.sandbox.worker` runs in the sandbox's processes instead; the two
sides share only :mod:`recorder.sandbox.protocol` (frames) and :mod:`recorder.sandbox.contexts`
(what names a context file's format and version).
"""
