"""``--cfg-options KEY=VALUE``: which keys a config takes.

mmengine's ``Config.merge_from_dict`` creates any key it is given, so a misspelled key
(``optim_wrapper.optimizer.lrr=0.02``) would be stored in a study's settings and change nothing.
Here every dotted KEY must name an entry the loaded config has (list entries by index, e.g.
``train_dataloader.dataset.pipeline.2.scale``). A new key is written ``+KEY=VALUE``
(``+optim_wrapper.optimizer.nesterov=true``, as Hydra spells an addition): its parent sections may
be missing too, and they are created; ``+`` on a key the config has is an error (drop the ``+``).
Sections that take arbitrary keyword arguments (an optimizer, a transform) follow the same rule:
whether a key is new or a typo is what the ``+`` says.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from paploss.errors import ConfigError

NEW_KEY_PREFIX = "+"
"""Marks a ``--cfg-options`` key that the config does not have and that is added on purpose."""


def plain_key(key: str) -> str:
    """``key`` without the new-key mark (``+a.b`` -> ``a.b``)."""
    return key[len(NEW_KEY_PREFIX) :] if key.startswith(NEW_KEY_PREFIX) else key


def checked_options(cfg: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options to merge into ``cfg`` (keys without the ``+`` mark) once every key passes
    :func:`check_key` against ``cfg`` (the loaded config, before the merge).

    Raises:
        ConfigError: one line naming the key, what the config has there and the fix.
    """
    tree = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    merged: dict[str, Any] = {}
    for key, value in options.items():
        check_key(tree, key)
        merged[plain_key(key)] = value
    return merged


def check_key(tree: Mapping[str, Any], key: str) -> None:
    """ConfigError unless the dotted ``key`` names an entry of ``tree`` (or, marked ``+``, one
    that ``tree`` does not have)."""
    new = key.startswith(NEW_KEY_PREFIX)
    name = plain_key(key)
    parts = name.split(".")
    if not name or any(not p for p in parts):
        raise ConfigError(f"--cfg-options {key}: an empty key part; write KEY.SUBKEY=VALUE")
    node: Any = tree
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "the config"
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
                continue
            if new:
                return
            raise ConfigError(_unknown(name, where, part, list(node)))
        if isinstance(node, Sequence) and not isinstance(node, str):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            raise ConfigError(
                f"--cfg-options {key}: {where} is a list of {len(node)} entries, {part!r} is "
                f"none of its indices 0..{len(node) - 1}; fix the key"
            )
        if new:
            return
        raise ConfigError(
            f"--cfg-options {key}: {where} is {_short(node)}, not a section with keys; write "
            f"{NEW_KEY_PREFIX}{name}=VALUE to replace it by one on purpose"
        )
    if new:
        raise ConfigError(
            f"--cfg-options {key}: the config has {name} already; drop the "
            f"'{NEW_KEY_PREFIX}' ({name}=VALUE), which marks a new key"
        )


def _unknown(name: str, where: str, part: str, keys: list[Any]) -> str:
    names = sorted(str(k) for k in keys)
    close = difflib.get_close_matches(part, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    return (
        f"--cfg-options {name}: {where} has no key {part!r} ({hint}its keys: {shown}); fix the "
        f"spelling, or write {NEW_KEY_PREFIX}{name}=VALUE to add a new key on purpose"
    )


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
