"""The CLI's single output point: consoles, tables and JSON."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
from rich.console import Console


def console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def err_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def df_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-friendly dicts (NaN/NaT become null, list columns lists)."""
    import numpy as np

    clean = df.astype(object).where(df.notna(), None)
    return [
        {str(k): v.tolist() if isinstance(v, np.ndarray) else v for k, v in r.items()}  # list columns
        for r in clean.to_dict(orient="records")
    ]
