"""Stored data as valid Unicode text, for every output that must be strict.

Redis values are read with ``surrogateescape``: bytes that are not UTF-8 come back as
lone surrogates, which exact round trips keep but JSON, Parquet and terminals refuse.
"""

from __future__ import annotations

from typing import Any

__all__ = ["json_safe", "valid_text"]


def valid_text(value: object) -> str:
    """``value`` as valid text: undecodable bytes (kept as surrogates) as \\x escapes."""
    text = str(value)
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no decoding produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(data: Any) -> Any:
    """``data`` with every string valid Unicode, so the JSON is strict (no lone surrogates)."""
    if isinstance(data, str):
        return valid_text(data)
    if isinstance(data, dict):
        return {json_safe(k): json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data
