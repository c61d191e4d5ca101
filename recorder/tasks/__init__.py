"""Task specs: a question template, a checker, a budget, and instances with contexts.

``load_task(path)`` reads a YAML or TOML task file, validates all of it and
returns a frozen :class:`TaskSpec`; an invalid file raises one
:class:`TaskSpecError` listing every problem as ``FILE:LINE: problem``.
"""

from recorder.tasks.loader import TaskSpecError, load_task
from recorder.tasks.spec import SPLITS, Budget, ContextSource, InstanceSpec, TaskSpec

__all__ = ["SPLITS", "Budget", "ContextSource", "InstanceSpec", "TaskSpec", "TaskSpecError", "load_task"]
