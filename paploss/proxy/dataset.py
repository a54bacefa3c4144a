"""The proxy dataset's cache: generation under a lock, damage checks and repair.

The default root of a settings combination is ``$PAPLOSS_DATA/<settings hash>`` with
``PAPLOSS_DATA`` defaulting to ``~/.cache/paploss/proxy``. A dataset is written into
``.<root name>.tmp-<host>-<pid>`` next to the root and renamed into place, under the lock file
``.<root name>.lock``; such folders left by a killed process of this host are removed by the next
generation. Every call checks a generated dataset (:func:`dataset_problem`: settings.json, every
split's json, every listed PNG present and ending in its IEND chunk) and rebuilds a damaged one,
saying so on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from paploss._files import writable_dir_problem
from paploss.proxy.coco_writer import write_split
from paploss.proxy.scenes import load_digits, partition_sources
from paploss.proxy.settings import (
    ANN_FILE,
    DEFAULT_CACHE,
    ENV_CACHE,
    FORMAT_VERSION,
    IMG_DIR,
    SETTINGS_FILE,
    SPLITS,
    ProxySettings,
)

PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
"""The last 12 bytes of every complete PNG file: the empty IEND chunk and its CRC."""


def default_cache_dir() -> Path:
    """``$PAPLOSS_DATA`` or ``~/.cache/paploss/proxy``: the parent of the per-settings folders."""
    return Path(os.environ.get(ENV_CACHE) or DEFAULT_CACHE).expanduser()


def default_root(settings: ProxySettings | None = None) -> Path:
    """The cache folder of a settings combination: ``default_cache_dir() / settings.digest()``."""
    return default_cache_dir() / (settings or ProxySettings()).digest()


def split_paths(root: str | os.PathLike[str]) -> dict[str, Path]:
    """``{split: <root>/<split>}``; each holds ``annotations.json`` and ``images/``."""
    root = Path(root)
    return {split: root / split for split in SPLITS}


def read_settings(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _png_complete(path: Path) -> bool:
    """The file exists and ends in a PNG's IEND chunk (a truncated file does not)."""
    try:
        with open(path, "rb") as f:
            f.seek(-len(PNG_END), os.SEEK_END)
            return f.read() == PNG_END
    except OSError:
        return False


def dataset_problem(root: str | os.PathLike[str]) -> str | None:
    """What is wrong with the generated dataset in ``root``; None when it is complete.

    Checks settings.json (the completion marker), that every split's annotations.json parses and
    lists as many images as the settings ask for, and that every listed image file exists and
    ends in a PNG's IEND chunk. Reads 12 bytes per image (7,000 images: well under a second).
    """
    root = Path(root)
    settings = read_settings(root)
    if not isinstance(settings, dict):
        return f"no readable {SETTINGS_FILE}"
    for split in SPLITS:
        ann_file = root / split / ANN_FILE
        try:
            coco = json.loads(ann_file.read_bytes())
            names = [im["file_name"] for im in coco["images"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{split}/{ANN_FILE} cannot be read ({type(exc).__name__})"
        if len(names) != settings.get(f"num_{split}"):
            return (
                f"{split}/{ANN_FILE} lists {len(names)} images, not {settings.get(f'num_{split}')}"
            )
        img_dir = root / split / IMG_DIR
        bad = [name for name in names if not _png_complete(img_dir / str(name))]
        if bad:
            return (
                f"{len(bad)} of {len(names)} {split} images are missing or truncated, e.g. "
                f"{split}/{IMG_DIR}/{bad[0]}"
            )
    return None


def _host() -> str:
    """This machine's name as it appears in temporary folder names (letters and digits)."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's process
        return True
    return True


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Remove ``.<root name>.tmp-[<host>-]<pid>`` (and ``.damaged-``) folders next to ``root``
    that a process of this host left behind when it was killed (its pid is gone).

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    pattern = re.compile(rf"\.{re.escape(root.name)}\.(?:tmp|damaged)-(?:(\w+)-)?(\d+)")
    try:
        entries = list(root.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or match.group(1) not in (None, _host()):
            continue
        if int(match.group(2)) == os.getpid() or not _pid_alive(int(match.group(2))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def _generation_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive lock ``.<root name>.lock`` next to ``root`` (one process generates or
    repairs a root at a time; the others wait and then find it complete)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the rename into place still keeps the root consistent
        yield
        return
    fd = os.open(root.parent / f".{root.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def dataset_state(root: Path, wanted: dict[str, Any], own_cache: bool) -> str | None:
    """None: ``root`` holds the wanted, complete dataset. "" : there is none yet (missing or an
    empty folder). Otherwise why the folder must be rebuilt.

    Raises:
        ValueError: ``root`` holds something that is not to be replaced: a dataset of other
            settings, a file, or (outside the cache) a folder with other content.
    """
    existing = read_settings(root)
    if existing is not None and existing != wanted:
        raise ValueError(
            f"{str(root)!r} holds a proxy dataset with other settings ({existing}); "
            f"requested {wanted}. Choose another folder or delete it."
        )
    if existing is not None:
        return dataset_problem(root)
    if not root.exists():
        return ""
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} exists and is not an (empty) proxy dataset folder")
    entries = {p.name for p in root.iterdir()}
    if not entries:
        return ""
    # A folder of the cache holds only what the generator writes; elsewhere an incomplete
    # dataset is not told apart from a user's folder, which is never deleted.
    if own_cache and entries <= {SETTINGS_FILE, *SPLITS}:
        return f"incomplete: no readable {SETTINGS_FILE}"
    raise ValueError(
        f"{str(root)!r} exists and is not an (empty) proxy dataset folder; delete it or choose "
        "another folder"
    )


def generate_proxy_dataset(
    root: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    num_train: int = ProxySettings.num_train,
    num_eval: int = ProxySettings.num_eval,
    num_val: int = ProxySettings.num_val,
    image_size: int = ProxySettings.image_size,
    min_objects: int = ProxySettings.min_objects,
    max_objects: int = ProxySettings.max_objects,
    size_mix: Sequence[float] = ProxySettings.size_mix,
    split_fractions: Sequence[float] = ProxySettings.split_fractions,
    **other: Any,
) -> dict[str, Path]:
    """Generate the proxy dataset (or find it already generated) and return its split folders.

    Idempotent and safe to call from concurrent processes: a folder whose ``settings.json`` equals
    the requested settings and that passes :func:`dataset_problem` is returned untouched;
    otherwise the data is written into a temporary sibling folder and renamed into place. A
    damaged dataset of these settings (a truncated image, a broken json; in the default cache
    also one without ``settings.json``) is rebuilt, with one line on stderr saying so.

    Args:
        root: target folder; None = ``default_root(settings)`` (``$PAPLOSS_DATA/<hash>``).
        seed, num_train, num_eval, num_val, image_size, min_objects, max_objects, size_mix,
        split_fractions, **other: the ``ProxySettings`` fields (``other``: min_small, max_large,
            max_iou, max_cover).

    Returns:
        ``{"train": <root>/train, "eval": <root>/eval, "val": <root>/val}``; each folder holds
        ``annotations.json`` (COCO) and ``images/``.

    Raises:
        ValueError: invalid settings; ``root`` holds a different dataset or foreign files; the
            dataset must be generated or rebuilt but its folder is not writable (the message
            names the folder to delete or the setting to change).
    """
    unknown = set(other) - {f.name for f in dataclasses.fields(ProxySettings)}
    if unknown:
        raise ValueError(f"unknown proxy settings {sorted(unknown)}")
    settings = ProxySettings(
        seed=seed,
        num_train=num_train,
        num_eval=num_eval,
        num_val=num_val,
        image_size=image_size,
        min_objects=min_objects,
        max_objects=max_objects,
        size_mix=tuple(size_mix),
        split_fractions=tuple(split_fractions),
        **other,
    )
    own_cache = root is None
    root = Path(root).expanduser().absolute() if root is not None else default_root(settings)
    wanted = settings.to_dict()
    problem = dataset_state(root, wanted, own_cache)
    if problem is None:
        return split_paths(root)
    _check_parent_writable(root, problem, own_cache)
    root.parent.mkdir(parents=True, exist_ok=True)
    with _generation_lock(root):
        problem = dataset_state(root, wanted, own_cache)  # another process may have finished it
        if problem is not None:
            remove_stale_temporaries(root)
            if problem:
                _discard_damaged(root, problem)
            _generate(root, settings, wanted)
    return split_paths(root)


def _check_parent_writable(root: Path, problem: str, own_cache: bool) -> None:
    """Raise ValueError unless the folder holding ``root`` is writable: the temporary folder and
    the rename into place need it. ``problem``: why ``root`` is to be (re)built ("": missing)."""
    unwritable = writable_dir_problem(root.parent)
    if unwritable is None:
        return
    elsewhere = f", or set ${ENV_CACHE} to a writable folder" if own_cache else ""
    if problem:
        raise ValueError(
            f"the proxy dataset {root} is damaged ({problem}) and cannot be rebuilt there "
            f"({unwritable}); delete {root} and run again{elsewhere}"
        )
    fix = f"set ${ENV_CACHE} to a writable folder" if own_cache else "choose a writable folder"
    raise ValueError(f"cannot generate the proxy dataset in {root} ({unwritable}); {fix}")


def _discard_damaged(root: Path, problem: str) -> None:
    """Move the damaged dataset ``root`` aside and delete it, saying so on stderr (the caller
    holds the generation lock)."""
    print(f"[paploss.proxy] {root}: damaged ({problem}); rebuilding it", file=sys.stderr)
    aside = root.parent / f".{root.name}.damaged-{_host()}-{os.getpid()}"
    try:
        os.rename(root, aside)
    except OSError as exc:
        raise ValueError(
            f"the proxy dataset {root} is damaged ({problem}) and cannot be moved aside "
            f"({exc.strerror}); delete {root} and run again"
        ) from exc
    shutil.rmtree(aside, ignore_errors=True)


def _generate(root: Path, settings: ProxySettings, wanted: dict[str, Any]) -> None:
    """Write the dataset into a temporary sibling of ``root`` and rename it into place."""
    images, labels = load_digits()
    pools = partition_sources(labels, settings.seed, settings.split_fractions)
    counts = dict(train=settings.num_train, eval=settings.num_eval, val=settings.num_val)
    tmp = root.parent / f".{root.name}.tmp-{_host()}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for split in SPLITS:
            write_split(tmp / split, split, counts[split], settings, images, labels, pools[split])
        (tmp / SETTINGS_FILE).write_text(json.dumps(wanted, indent=2, sort_keys=True))
        with contextlib.suppress(OSError):
            root.rmdir()  # an empty folder; os.rename needs a free name
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process (without the lock: another host) finished first; keep its copy
            # if it is the same, complete dataset.
            if read_settings(root) != wanted or dataset_problem(root) is not None:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def load_settings(root: str | os.PathLike[str]) -> ProxySettings:
    """The settings a generated dataset folder was built with."""
    data = read_settings(Path(root))
    if data is None:
        raise ValueError(f"{str(root)!r} is not a generated proxy dataset (no {SETTINGS_FILE})")
    data = dict(data)
    version = data.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise ValueError(f"{str(root)!r} has format version {version}, expected {FORMAT_VERSION}")
    data["size_mix"] = tuple(data["size_mix"])
    data["split_fractions"] = tuple(data["split_fractions"])
    return ProxySettings(**data)
