"""Help output fixes applied once when the CLI is built (no effect on parsing)."""

from __future__ import annotations

from typing import Any

import typer.core


def hide_flag_types() -> None:
    """Show flags without a type: typer 0.29 renders every boolean flag with its type, as if
    it took a value (``--json <bool>``, even ``--help <bool>``)."""
    option = typer.core.TyperOption
    if getattr(option.display_type_rich, "_rlmine", False):
        return
    original = option.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and not getattr(self, "count", False):
            return None
        result: str | None = original(self, ctx)
        return result

    display_type_rich._rlmine = True  # type: ignore[attr-defined]
    option.display_type_rich = display_type_rich  # type: ignore[method-assign]
