"""The Faster R-CNN and Deformable DETR proxies against their targets, for ``bench_proxy.py``.

Two pieces:

- :func:`read_baselines` (``bench_proxy.py --part baselines``): the val AP per seed of every
  baseline row of those detectors in Tab. 1 (hand-set and tuned), read from a reproduction's
  storage (``paploss-reproduce tab1``; nothing is trained here).
- :func:`render_targets`: one table of every target of the two proxies, each measured value
  taken from the part that measured it (``detectors``: trial wall and D_eval AP; ``presets/<det>``:
  spread of the preset means over the median seed std; ``rank/<det>``: Spearman rho;
  ``baselines``: val AP of seeds 0-2), with the target and whether it is met.

AP values are fractions (the proxy's bbox mAP), as in the other proxy tables.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from _common import markdown_table

TARGET_SEEDS = (0, 1, 2)
"""The baseline seeds the targets are checked on ("3 seeds"); rows with more report them too."""
DETECTORS = {
    "faster_rcnn": dict(label="Faster R-CNN", ap=0.25, wall=60.0),
    "deformable_detr": dict(label="Deformable DETR", ap=0.20, wall=60.0),
}
"""Per detector: its label (the group of its Tab. 1 rows) and its AP and trial wall targets."""
BASELINE_STD = 0.02
SPREAD = 10.0
RHO = 0.7


class BaselinesNotFound(ValueError):
    """The storage does not exist or has none of the detectors' baseline rows."""


def read_baselines(storage_url: str) -> dict[str, Any]:
    """The detectors' baseline rows of Tab. 1 as a reproduction recorded them in ``storage_url``:
    ``{"storage": <url as the user types it>, "rows": [{"detector", "label", "key",
    "aps": {seed: AP}}]}`` (rows not trained yet are left out)."""
    from paploss.errors import StorageError
    from paploss.reproduce.paper_detectors import HAND_SET, TUNED, detector_rows
    from paploss.reproduce.report_paths import user_storage
    from paploss.reproduce.snapshot import read_snapshot
    from paploss.study.storage import open_storage

    try:
        snapshot = read_snapshot(open_storage(storage_url, must_exist=True))
    except StorageError as exc:
        raise BaselinesNotFound(f"{exc}; run `paploss-reproduce tab1` first") from exc
    groups = {spec["label"]: det for det, spec in DETECTORS.items()}
    rows = []
    for row in detector_rows():
        if not row.label.endswith((HAND_SET, TUNED)) or row.group not in groups:
            continue
        result = snapshot.row(row.training.key)
        if result.n:
            aps = {str(s): v / 100.0 for s, v in sorted(result.by_seed().items())}
            rows.append(
                dict(detector=groups[row.group], label=row.label, key=row.training.key, aps=aps)
            )
    if not rows:
        raise BaselinesNotFound(
            f"{user_storage(storage_url)} holds no Faster R-CNN or Deformable DETR baseline row; "
            "run `paploss-reproduce tab1` into it first or name another --reproduction-storage"
        )
    return dict(storage=user_storage(storage_url), rows=rows)


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def _row(
    label: str, measure: str, value: float | None, fmt: str, target: str,
    ok: Callable[[float], bool], source: str,
) -> list[str]:  # fmt: skip
    """One line of the targets table (``value`` None: not measured)."""
    if value is None:
        return [label, measure, "not measured", target, _verdict(None), source]
    return [label, measure, format(value, fmt), target, _verdict(ok(value)), source]


def _baseline_rows(label: str, ap: float, rows: list[dict[str, Any]]) -> list[list[str]]:
    """The lines of one detector's baselines: val AP of seeds 0-2 (and of every seed)."""
    source, target = "`--part baselines`", f">= {ap:.2f}, std <= {BASELINE_STD}"
    if not rows:
        return [[label, "val AP of every baseline, 3 seeds", "not measured", target,
                 _verdict(None), source]]  # fmt: skip
    out = []
    for r in rows:
        measure = f"val AP, {r['label']}, seeds 0-2"
        aps = [r["aps"][str(s)] for s in TARGET_SEEDS if str(s) in r["aps"]]
        if len(aps) < len(TARGET_SEEDS):
            out.append([label, measure, "not measured", target, _verdict(None), source])
            continue
        mean, std = statistics.fmean(aps), statistics.stdev(aps)
        shown = f"{mean:.3f} ± {std:.3f}"
        if len(r["aps"]) > len(TARGET_SEEDS):
            every = list(r["aps"].values())
            shown += f" ({len(every)} seeds: {statistics.fmean(every):.3f} ± "
            shown += f"{statistics.stdev(every):.3f})"
        ok = mean >= ap and std <= BASELINE_STD
        out.append([label, measure, shown, target, _verdict(ok), source])
    return out


def render_targets(results: dict[str, Any]) -> list[str]:
    """The targets table of both detectors from ``results`` (the proxy benchmark's JSON)."""
    header = ["detector", "measure", "measured", "target", "met", "from"]
    lines: list[list[str]] = []
    trials = {r["name"]: r for r in (results.get("detectors") or {}).get("rows", [])}
    baselines = (results.get("baselines") or {}).get("rows", [])
    for det, spec in DETECTORS.items():
        label, ap, wall = spec["label"], float(spec["ap"]), float(spec["wall"])
        trial = trials.get(label)
        source = "`--part detectors`"
        lines.append(_row(
            label, "one trial, wall s (build + train + eval)",
            None if trial is None else trial.get("trial", trial["wall"]), ".1f",
            f"<= {wall:.0f}", lambda v, w=wall: v <= w, source,
        ))  # fmt: skip
        lines.append(_row(
            label, "D_eval AP, preset linear", None if trial is None else trial["AP"], ".3f",
            f">= {ap:.2f}", lambda v, a=ap: v >= a, source,
        ))  # fmt: skip
        lines += _baseline_rows(label, ap, [r for r in baselines if r["detector"] == det])
        presets = results.get(f"presets/{det}")
        spread = None
        if presets:
            means = [r["mean"] for r in presets["rows"]]
            spread = (max(means) - min(means)) / statistics.median(
                r["std"] for r in presets["rows"]
            )
        count = len(presets["rows"]) if presets else ">= 5"
        lines.append(_row(
            label, f"spread of {count} preset means / median seed std", spread, ".1f",
            f">= {SPREAD:.0f}", lambda v: v >= SPREAD, f"`--detector {det} --part presets`",
        ))  # fmt: skip
        rank = results.get(f"rank/{det}")
        measure = "Spearman rho, 1 epoch vs 5x longer, >= 8 parameter sets"
        if rank:
            measure = (
                f"Spearman rho, 1 epoch vs {rank['long_epochs']} epochs, "
                f"{len(rank['rows'])} parameter sets"
            )
        lines.append(_row(
            label, measure, None if rank is None else rank["rho"], ".2f", f">= {RHO}",
            lambda v: v >= RHO, f"`--detector {det} --part rank`",
        ))  # fmt: skip
    storage = (results.get("baselines") or {}).get("storage")
    intro = (
        "Every target of the two proxies, each value from the part of this benchmark that "
        "measured it (its own section above gives the machine); the baselines' val AP is read "
        "from the reproduction's storage"
        + (f" `{storage}`" if storage else "")
        + " (`--part baselines`; Tab. 1 of docs/reproduction.md), checked on seeds 0-2."
    )
    return ["### Targets of the Faster R-CNN and Deformable DETR proxies", "", intro, "",
            *markdown_table(header, lines), ""]  # fmt: skip
