"""`describe_changes`: what differs between a saved configuration and
this call's, as short text for the errors of a resumed run."""

from __future__ import annotations

from typing import Any
from typing import Mapping

import keras


def _short(value: Any, limit: int = 100) -> str:
    """`value` as short text: a serialized Keras object by its `name`
    (a member: `WRN-10-2`) or as `Class(key=value, ...)`, a list of them
    cut between items, anything else longer than `limit` cut at a comma
    or space, with `...`."""
    if (
        isinstance(value, dict)
        and "class_name" in value
        and isinstance(value.get("config"), dict)
    ):
        try:
            name = getattr(
                keras.saving.deserialize_keras_object(value), "name", None
            )
        except Exception:  # an unregistered class: its config instead
            name = None
        if isinstance(name, str):
            return name
        inner = ", ".join(f"{k}={v!r}" for k, v in value["config"].items())
        text = f"{value['class_name']}({inner})"
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        items = [_short(v, limit) for v in value]
        shown: list[str] = []
        for item in items:
            if shown and len(", ".join([*shown, item])) > limit - 20:
                break
            shown.append(item)
        rest = len(items) - len(shown)
        tail = f", ... {rest} more" if rest else ""
        return "[" + ", ".join(shown) + tail + "]"
    else:
        text = repr(value)
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    for mark in (", ", " "):
        at = cut.rfind(mark)
        if at > limit // 2:
            cut = cut[:at]
            break
    return cut + "..."


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `{dotted.key: value}` (serialized Keras objects and
    other values are leaves)."""
    if not isinstance(value, dict) or "class_name" in value:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def describe_changes(saved: Mapping, now: Mapping, *, max_keys: int = 6) -> str:
    """The keys whose values differ, as `key: saved X, now Y` text.

    Nested dicts are compared key by key (`recipe.gamma`); each value is
    shortened cleanly (`_short`), and past `max_keys` keys the rest are
    counted.

    Args:
        saved: the saved configuration (a JSON dict).
        now: the configuration of this call.
        max_keys: int, how many differing keys to spell out.

    Returns:
        str; empty when nothing differs.

    Examples:
        >>> describe_changes({"budget": 1, "seed": 0}, {"budget": 2, "seed": 0})
        'budget: saved 1, now 2'
    """
    old, new = _flatten(dict(saved)), _flatten(dict(now))
    missing = object()
    keys = sorted(
        k
        for k in set(old) | set(new)
        if old.get(k, missing) != new.get(k, missing)
    )

    def show(flat: dict, key: str) -> str:
        return _short(flat[key]) if key in flat else "(not set)"

    parts = [
        f"{k}: saved {show(old, k)}, now {show(new, k)}"
        for k in keys[:max_keys]
    ]
    if len(keys) > max_keys:
        parts.append(f"and {len(keys) - max_keys} more")
    return "; ".join(parts)
