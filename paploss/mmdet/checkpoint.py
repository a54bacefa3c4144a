"""Loading mmengine checkpoints under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``).

The problem: mmengine 0.10.7 loads local checkpoints with ``torch.load(filename, map_location)``.
Since torch 2.6 that means ``weights_only=True``, and an mmengine training checkpoint is more than
weights: ``meta['message_hub']`` holds ``mmengine.logging.HistoryBuffer`` objects (numpy arrays,
numpy scalars, and a dict of the buffer's statistics functions, pickled as
``getattr(HistoryBuffer, 'min')``). ``Runner.resume`` and ``load_from`` then fail with
``UnpicklingError: Weights only load failed``.

The fix (installed when ``paploss.mmdet`` is imported, idempotent): mmengine's loader for local
files (``CheckpointLoader`` scheme ``''``, the one behind ``resume``, ``load_from`` and
``init_cfg=dict(type='Pretrained', checkpoint='<local file>')``) is replaced by
``load_from_local``, which still loads with ``weights_only=True`` but inside
``torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS)``: the handful of types an mmengine
checkpoint needs beyond tensors, namely

- ``mmengine.logging.history_buffer.HistoryBuffer`` (rebuilt through its ``__setstate__``),
- numpy's array/dtype/scalar reconstructors (under their numpy 1.x and 2.x names),
- ``builtins.getattr`` mapped to ``history_buffer_attribute``, a restricted getattr that only
  returns public methods of HistoryBuffer (the pickled statistics functions) and raises otherwise.

Nothing is unpickled with ``weights_only=False``, the allowlist is active only during mmengine's
local-file loads (``torch.load`` elsewhere is untouched), and remote schemes (http, torchvision://)
keep mmengine's loaders: their files are plain state dicts that load as they are. A checkpoint that
needs further types fails with torch's message naming them; if the file is trusted, allow them with
``torch.serialization.add_safe_globals`` (which this loader honours).
"""

from __future__ import annotations

import os.path as osp
import pickle
from typing import Any

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    "MMENGINE_SAFE_GLOBALS",
    "history_buffer_attribute",
    "install",
    "load_from_local",
]


def history_buffer_attribute(obj: Any, name: Any) -> Any:
    """``getattr`` restricted to public methods of HistoryBuffer (unpickling only).

    mmengine pickles ``HistoryBuffer._statistics_methods`` (e.g. ``{'min': HistoryBuffer.min}``)
    as ``getattr(HistoryBuffer, 'min')``; nothing else may be reached through it.

    Raises:
        pickle.UnpicklingError: for any other object or attribute.
    """
    if (
        obj is HistoryBuffer
        and isinstance(name, str)
        and not name.startswith("_")
        and callable(getattr(HistoryBuffer, name, None))
    ):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f"refusing getattr({obj!r}, {name!r}) while loading a checkpoint: only public methods "
        "of mmengine's HistoryBuffer are allowed"
    )


def _numpy_globals() -> list[Any]:
    """numpy reconstructors, under the module names numpy 1.x and 2.x write into pickles."""
    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    entries: list[Any] = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        entries.append((multiarray._reconstruct, f"{module}._reconstruct"))
        entries.append((multiarray.scalar, f"{module}.scalar"))
    # dtype classes (numpy >= 1.25 pickles some dtypes through them)
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        for name in dir(dtypes):
            value = getattr(dtypes, name)
            if isinstance(value, type) and issubclass(value, np.dtype):
                entries.append(value)
    return entries


MMENGINE_SAFE_GLOBALS: list[Any] = [
    HistoryBuffer,
    (history_buffer_attribute, "builtins.getattr"),
    *_numpy_globals(),
]
"""Globals allowed (with ``weights_only=True``) while loading an mmengine checkpoint."""


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file checkpoint loader, torch >= 2.6 compatible (see the module doc).

    Args:
        filename: path of the checkpoint (``~`` expanded).
        map_location: as ``torch.load``.

    Returns:
        The loaded checkpoint (dict).

    Raises:
        FileNotFoundError: no such file.
        pickle.UnpicklingError: the file needs globals outside the allowlist.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
        return torch.load(filename, map_location=map_location, weights_only=True)


def install() -> bool:
    """Register ``load_from_local`` as mmengine's loader for local paths (idempotent).

    Returns:
        True if installed, False on a torch without ``torch.serialization.safe_globals``
        (torch < 2.5, where ``torch.load`` does not default to ``weights_only=True`` anyway).
    """
    if not hasattr(torch.serialization, "safe_globals"):  # pragma: no cover - old torch
        return False
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)
    return True


install()
