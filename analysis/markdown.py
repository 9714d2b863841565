"""A small Markdown (GitHub pipe) table writer, so pandas' to_markdown and its `tabulate` are not needed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

Formatter = Callable[[Any], str]


def cell(value: Any, digits: int = 3) -> str:
    """'-' for missing values, floats to `digits` decimals, pipes escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    headers: Sequence[str] | None = None,
    formats: dict[str, Formatter] | None = None,
    digits: int = 3,
) -> str:
    """`frame[columns]` as a pipe table; numeric columns are right-aligned."""
    columns = list(columns if columns is not None else frame.columns)
    headers = list(headers if headers is not None else columns)
    formats = formats or {}
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    aligns = []
    for column in columns:
        numeric = column in frame and pd.api.types.is_numeric_dtype(frame[column])
        aligns.append("---:" if numeric else "---")
    lines.append("| " + " | ".join(aligns) + " |")
    for _, row in frame.iterrows():
        values = []
        for column in columns:
            value = row.get(column)
            values.append(formats[column](value) if column in formats else cell(value, digits))
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"
