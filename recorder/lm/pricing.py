"""The price table: USD per million tokens, so a run's cost is known when usage is.

The bundled ``prices.json`` holds public list prices; a user file of the same shape
(``{"models": {"name": {"input": X, "output": Y}}}``, or the inner mapping alone)
overrides or extends it, given to :func:`load_prices` or named by ``RLMINE_PRICES``.

Lookup never guesses between different models: it tries the name as given, then
without a provider prefix (``openai/gpt-4o-mini`` → ``gpt-4o-mini``), then without a
date or ``-latest`` suffix (``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``). An unknown
model, or a call without usage, costs ``None`` — never zero.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from rlmine.errors import UserError

__all__ = ["PRICES_ENV", "Price", "PriceTable", "bundled_prices", "load_prices", "parse_prices"]

PRICES_ENV = "RLMINE_PRICES"
_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")
_SHAPE_HINT = 'a JSON file like {"models": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}}'


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True, slots=True)
class PriceTable:
    prices: Mapping[str, Price]

    def lookup(self, model: str) -> Price | None:
        candidates = [model, model.rsplit("/", 1)[-1]]
        candidates += [_SUFFIX.sub("", name) for name in candidates]
        for name in candidates:
            price = self.prices.get(name)
            if price is not None:
                return price
        return None

    def cost(self, model: str, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """USD for one call; None for an unknown model or missing usage."""
        price = self.lookup(model)
        if price is None or tokens_in is None or tokens_out is None:
            return None
        return (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1_000_000

    def merged(self, overrides: Mapping[str, Price]) -> PriceTable:
        return PriceTable({**self.prices, **overrides})


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UserError(f"{where} must be a non-negative number, got {value!r}", _SHAPE_HINT)
    return float(value)


def parse_prices(data: Any, source: str) -> dict[str, Price]:
    """Validate a decoded price file; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object", _SHAPE_HINT)
    models = data.get("models", {k: v for k, v in data.items() if not k.startswith("_")})
    if not isinstance(models, dict):
        raise UserError(f"{source}: 'models' must be an object", _SHAPE_HINT)
    table: dict[str, Price] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or set(entry) - {"input", "output"} or len(entry) != 2:
            raise UserError(f"{source}: model {name!r} needs exactly 'input' and 'output'", _SHAPE_HINT)
        table[name] = Price(
            _number(entry["input"], f"{source}: {name}.input"),
            _number(entry["output"], f"{source}: {name}.output"),
        )
    return table


def bundled_prices() -> PriceTable:
    text = resources.files("recorder.lm").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable(parse_prices(json.loads(text), "bundled prices.json"))


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The bundled table, overridden by ``path`` (or the file named by ``RLMINE_PRICES``)."""
    table = bundled_prices()
    chosen = path if path is not None else os.environ.get(PRICES_ENV) or None
    if chosen is None:
        return table
    file = Path(chosen)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"price file not found: {file}", f"a valid path in {PRICES_ENV}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read price file {file}: {exc}", _SHAPE_HINT) from None
    return table.merged(parse_prices(data, str(file)))
