"""The sandbox's worker side: code that runs in the sandbox's own processes, never in the recorder.

Standard library only, and imported without this package's ``__init__`` by the entry point
(:mod:`~recorder.sandbox.worker.main`), which starts either a fork-server template
(:mod:`~recorder.sandbox.worker.template`, children started by
:mod:`~recorder.sandbox.worker.forked_child`) or a spawned worker. A worker confines itself
(:mod:`~recorder.sandbox.worker.isolation`, :mod:`~recorder.sandbox.worker.fsview`,
:mod:`~recorder.sandbox.worker.guards`), loads its context
(:mod:`~recorder.sandbox.worker.context_loader`, :mod:`~recorder.sandbox.worker.text_reader`)
and serves cells (:mod:`~recorder.sandbox.worker.serve`, :mod:`~recorder.sandbox.worker.runtime`,
:mod:`~recorder.sandbox.worker.capture`). The templates run no user code; the workers run it
only after every confinement step.
"""
