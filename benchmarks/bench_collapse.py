"""Benchmark of the early stop of collapsed search trials, on the searches' own trials.

A search trial whose training collapses (AP < 0.001 after its epoch) should end early with reward
0, and a trial whose training learns (AP >= 0.01) must never be stopped. The proxy config's
``collapse_rule`` (:mod:`paploss.study.config.early_stop`) decides from the loss curve alone, so its
evidence is the loss curves of real search trials: every trial of the given search studies that
trained the config's PAPLoss proxy for one epoch keeps its curve in ``<work dir>/result.json``.

What it measures:

- **The rule on every recorded curve.** Per trial: its AP (the reward), the loss's motion at the
  rule's check (mean absolute change per iteration over its window) and whether the rule stops it.
  Trials the recorded search itself stopped (by the rule it ran with) have curves that end at the
  stop: they are trained again to the end (same parameters, seed and data, cached under
  ``--cache``) so that their AP and their curve beyond the stop are known; they train on their
  study's data with its loss options (``--loc-score``, ``--no-block-grad``). Those stopped by
  searches that ran the config's own rule are the rule's out-of-sample check.
- **The choice of the rule.** For each candidate check (iteration, window) the lowest motion of a
  trial that learns (AP >= 0.01) and how many collapsed trials move less than 0.7 times that: the
  frontier the config's rule was chosen from.
- **The cost of a stopped trial.** Up to ``--timed`` stopped trials train twice more, one after
  the other: with the rule (as search trials) and to the end; the ratio of the children's wall
  times (build + train + eval).

Trials are grouped by where the search drew them: ``round 1`` (PPO2's first round, the initial
truncated normal, sigma 0.2 around linear), ``later`` (PPO2's later rounds, around a moved mean)
and ``other`` (another sampler). Identical trainings recorded by several studies (the same
parameters, seed and data) count once.

    .venv/bin/python benchmarks/bench_collapse.py \\
        --storage sqlite:///$HOME/.cache/paploss/search40/search.db \\
        --storage sqlite:///$HOME/.cache/paploss/reproduce/full.db
    .venv/bin/python benchmarks/bench_collapse.py --smoke   # a check that it runs, ~1 min

Output: ``benchmarks/results/collapse.json`` and the section between the ``bench_collapse``
markers of ``benchmarks/RESULTS.md``.

``--check`` applies the config's rule to searches that ran it after it was chosen (their stops
happened during the search, not in hindsight): the same analysis and timing, written to its own
section (``bench_collapse_check``) and ``collapse_check.json``, so the evidence the rule was
chosen from stays as it is:

    .venv/bin/python benchmarks/bench_collapse.py --check \
        --storage sqlite:///$HOME/.cache/paploss/reproduce/full.db --study search/protocol
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import bench_proxy
from _common import (
    RESULTS_DIR,
    RESULTS_MD,
    machine_summary,
    markdown_table,
    replace_section,
    write_json,
)

from paploss.study.config.early_stop import COLLAPSED_AP

RESULTS_JSON = RESULTS_DIR / "collapse.json"
SECTION = "bench_collapse"
CHECK_JSON = RESULTS_DIR / "collapse_check.json"
CHECK_SECTION = "bench_collapse_check"
LEARNS_AP = 0.01
"""A trial with a reward of at least this learns: stopping it is a false stop."""
MARGIN = 0.7
"""The frontier counts the collapsed trials below this fraction of the learners' lowest motion."""
CANDIDATES = ((30, 10), (35, 10), (40, 10), (40, 20), (47, 10), (47, 20))
"""(check_at, window) pairs of the frontier table; 47 is a quarter of the proxy's 188 iterations."""


@dataclass(frozen=True)
class Curve:
    """One recorded (or trained-again) 1-epoch training of a search trial.

    Attributes:
        label: ``<study>#<trial number>``.
        group: ``round 1``, ``later`` or ``other`` (see the module docstring).
        ap: the reward (AP on D_eval) of the full training.
        losses: the loss of every training iteration, ``losses[k]`` iteration ``k + 1``'s.
        stopped_at: the iteration at which the recorded search stopped the trial (None: it ran
            to the end).
        search_rule: the collapse_rule its search ran, as ``check_at/window/min_motion``.
        retrained: the AP and curve come from a training again to the end.
    """

    label: str
    group: str
    ap: float
    losses: list[float]
    stopped_at: int | None
    retrained: bool
    search_rule: str = "none"


# ------------------------------------------------------------------------------ reading
def _group(study_attrs: dict[str, Any], trial_attrs: dict[str, Any]) -> str:
    sampler = (study_attrs.get("sampler") or {}).get("name")
    if sampler != "ppo2":
        return "other"
    return "round 1" if trial_attrs.get("ppo2_round") == 0 else "later"


def _studies(storage_url: str, config_name: str, names: list[str] | None) -> list[Any]:
    """The storage's loss-search studies of ``config_name`` with 1-epoch trials."""
    import optuna

    from paploss.study.storage import open_storage

    storage = open_storage(storage_url, must_exist=True)  # StorageError: cannot be read
    out = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if names and summary.study_name not in names:
            continue
        attrs = summary.user_attrs
        if Path(str(attrs.get("config", ""))).name != config_name:
            continue
        if attrs.get("epochs") != 1 or "hyper_space" in attrs:
            continue
        out.append(optuna.load_study(study_name=summary.study_name, storage=storage))
    return out


def _launched_by(trial: Any, work: Path) -> bool:
    """Whether the training in ``work`` is the trial's: its spec was written while the trial
    ran (a later study may have reused the folder)."""
    spec = work / "spec.json"
    if not spec.is_file() or trial.datetime_start is None or trial.datetime_complete is None:
        return False
    launched = float(json.loads(spec.read_text()).get("launched_at", 0.0))
    slack = 5.0  # seconds: clocks of the storage record and of the spec
    start, end = trial.datetime_start.timestamp(), trial.datetime_complete.timestamp()
    return start - slack <= launched <= end + slack


def _training_key(params: dict[str, Any], seed: Any, data: Any, options: Any) -> str:
    text = json.dumps([params, seed, data, options], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_trials(
    storages: list[str], config_name: str, names: list[str] | None
) -> tuple[list[dict[str, Any]], int]:
    """Every complete trial of the studies with its result file read: dicts with ``label``,
    ``group``, ``ap``, ``losses``, ``stopped_at``, ``params`` (LossParams dict), ``seed``,
    ``data`` (the study's data record), ``loss_options``; and the number of duplicates dropped."""
    from optuna.trial import TrialState

    seen: set[str] = set()
    out, duplicates = [], 0
    for url in storages:
        for study in _studies(url, config_name, names):
            attrs = study.user_attrs
            settings = attrs.get("search_settings") or {}
            options = settings.get("loss_options")
            ran = settings.get("collapse_rule")
            search_rule = (
                f"{ran['check_at']}/{ran['window']}/{ran['min_motion']}" if ran else "none"
            )
            for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                work = Path(str(trial.user_attrs.get("work_dir", "")))
                result, params = work / "result.json", work / "loss_params.json"
                if not (result.is_file() and params.is_file()) or not _launched_by(trial, work):
                    continue
                record = json.loads(result.read_text())
                loss_params = json.loads(params.read_text())
                key = _training_key(
                    loss_params, attrs.get("train_seed"), attrs.get("data"), options
                )
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                out.append(
                    dict(
                        label=f"{study.study_name}#{trial.number}",
                        group=_group(attrs, trial.user_attrs),
                        ap=float(trial.value or 0.0),
                        losses=[float(v) for _, v in record.get("loss_curve") or []],
                        stopped_at=record.get("collapsed_at"),
                        params=loss_params,
                        seed=int(attrs.get("train_seed", 0)),
                        data=attrs.get("data"),
                        loss_options=options,
                        search_rule=search_rule,
                    )
                )
    return out, duplicates


# ------------------------------------------------------------------------------ trainings
def complete_curves(
    trainer: bench_proxy.Trainer, trials: list[dict[str, Any]]
) -> tuple[list[Curve], list[str]]:
    """The Curves of the trials: recorded ones as they are, stopped ones trained again to the
    end on their study's data with its loss options (a Trainer per data source); the labels of
    the stopped trials whose data source is not found."""
    trainers: dict[tuple[str, ...], bench_proxy.Trainer | None] = {}
    runs, skipped = {}, []
    for t in trials:
        if t["stopped_at"] is None:
            continue
        source = tuple((t["data"] or {}).get("source") or ())
        if source not in trainers:
            trainers[source] = _trainer_for(trainer, list(source))
        if trainers[source] is None:
            skipped.append(t["label"])
            continue
        run = bench_proxy.Run(
            t["label"], t["params"], t["seed"], 1, "eval", loss_options=t["loss_options"]
        )
        runs[t["label"]] = (trainers[source], run)
    done: dict[str, dict[str, Any]] = {}
    for source_trainer in {id(tr): tr for tr, _ in runs.values()}.values():
        mine = [run for tr, run in runs.values() if tr is source_trainer]
        done |= source_trainer.run_all(mine)
    curves = []
    for t in trials:
        if t["label"] in runs:
            record = done[runs[t["label"]][1].key()]
            curves.append(
                Curve(t["label"], t["group"], record["metrics"]["AP"], record["loss_curve"],
                      t["stopped_at"], True, t["search_rule"])
            )  # fmt: skip
        elif t["stopped_at"] is None:
            curves.append(
                Curve(t["label"], t["group"], t["ap"], t["losses"], None, False, t["search_rule"])
            )
    return curves, skipped


def _trainer_for(default: bench_proxy.Trainer, source: list[str]) -> bench_proxy.Trainer | None:
    """A Trainer of the data ``source`` (a study's ``--data``): ``default`` for its own data,
    None when the source is gone."""
    from paploss.errors import InputError

    if not source or source == list(default.data_source):
        return default
    try:
        return bench_proxy.Trainer(
            default.cache, default.workers, data=source, cfg_options=default.cfg_options
        )
    except (InputError, OSError):
        return None


def stop_cost(
    trainer: bench_proxy.Trainer, trials: list[dict[str, Any]], labels: list[str]
) -> list[dict[str, Any]]:
    """The named trials trained with the rule and to the end, one after the other (one worker):
    per trial the children's wall times and the iteration of the stop."""
    out = []
    by_label = {t["label"]: t for t in trials}
    for label in labels:
        t = by_label[label]
        short = bench_proxy.Run(label, t["params"], t["seed"], 1, "eval", early_stop=True)
        full = bench_proxy.Run(label, t["params"], t["seed"], 1, "eval", repeat=1)
        done = trainer.run_all([short, full], workers=1)
        out.append(
            dict(
                label=label,
                stopped_at=done[short.key()]["collapsed_at"],
                stopped_seconds=done[short.key()]["trial_seconds"],
                full_seconds=done[full.key()]["trial_seconds"],
            )
        )
    return out


# ------------------------------------------------------------------------------ analysis
def frontier(rule: Any, curves: list[Curve]) -> list[dict[str, Any]]:
    """Per candidate (check_at, window): the learners' lowest motion and the collapsed trials
    below ``MARGIN`` times it (each curve long enough for the check)."""
    from paploss.study.config.early_stop import CollapseRule

    rows = []
    for check_at, window in sorted({*CANDIDATES, (rule.check_at, rule.window)}):
        probe = CollapseRule(check_at=check_at, window=window, min_motion=1.0)
        learn = [probe.motion(c.losses) for c in curves if c.ap >= LEARNS_AP]
        learn = [m for m in learn if m is not None]
        collapsed = [probe.motion(c.losses) for c in curves if c.ap < COLLAPSED_AP]
        collapsed = [m for m in collapsed if m is not None]
        lowest = min(learn) if learn else None
        rows.append(
            dict(
                check_at=check_at,
                window=window,
                learners_lowest=lowest,
                collapsed=len(collapsed),
                below=sum(1 for m in collapsed if lowest is not None and m < MARGIN * lowest),
            )
        )
    return rows


def analyse(rule: Any, curves: list[Curve]) -> dict[str, Any]:
    """The rule on every curve, per group and over all."""
    rows = [
        dict(asdict(c) | dict(motion=rule.motion(c.losses), stops=rule.collapsed(c.losses)))
        for c in curves
    ]
    for r in rows:
        r.pop("losses")
    groups = {}
    for name in ("round 1", "later", "other", "all"):
        sel = [r for r in rows if name in ("all", r["group"])]
        groups[name] = dict(
            trials=len(sel),
            collapsed=sum(1 for r in sel if r["ap"] < COLLAPSED_AP),
            stopped=sum(1 for r in sel if r["stops"]),
            caught=sum(1 for r in sel if r["stops"] and r["ap"] < COLLAPSED_AP),
            false_stops=sum(1 for r in sel if r["stops"] and r["ap"] >= LEARNS_AP),
        )
    learners = [r["motion"] for r in rows if r["ap"] >= LEARNS_AP and r["motion"] is not None]
    by_search_rule: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["stopped_at"] is not None:
            entry = by_search_rule.setdefault(r["search_rule"], dict(stopped=0, false=[]))
            entry["stopped"] += 1
            if r["ap"] >= LEARNS_AP:
                entry["false"].append(f"{r['label']} ({r['ap']:.3f})")
    return dict(
        searches_stops=by_search_rule,
        rule=rule.to_json(),
        rows=rows,
        groups=groups,
        learners_lowest=min(learners) if learners else None,
        frontier=frontier(rule, curves),
    )


# ------------------------------------------------------------------------------ report
def render(results: dict[str, Any]) -> str:
    rule = results["rule"]
    span = f"{rule['check_at'] - rule['window'] + 1}-{rule['check_at']}"
    out = [
        "## Early stop of collapsed trials (`benchmarks/bench_collapse.py`)",
        "",
        f"### The rule on the searches' own trials ({results['machine']})",
        "",
        f"The proxy config's `collapse_rule = {rule}` on the loss curves of "
        f"{results['groups']['all']['trials']} distinct 1-epoch search trials of "
        f"{len(results['studies'])} studies ({', '.join(results['studies'])}); "
        f"{results['duplicates']} repeated trainings counted once. A trial collapsed when its "
        f"AP on D_eval is < {COLLAPSED_AP}; stopping a trial with AP >= {LEARNS_AP} is a false "
        f"stop. Motion: mean absolute change of the loss per iteration over iterations {span}. "
        f"{results['retrained']} trials stopped by their search were trained again to the end "
        "for their AP and curve"
        + (f"; not trained again (their data is gone): {', '.join(results['skipped'])}."
           if results["skipped"] else "."),
        "",
    ]  # fmt: skip
    for ran, entry in sorted(results["searches_stops"].items()):
        check_at, window, motion = ran.split("/")
        false = ", ".join(entry["false"]) or "none"
        out += [
            f"Searches that ran the rule check_at {check_at}, window {window}, min_motion "
            f"{motion} stopped {entry['stopped']} trials; trained again to the end, the false "
            f"stops (AP >= {LEARNS_AP}): **{false}**.",
            "",
        ]
    out += _groups_table(results["groups"])
    lowest = results["learners_lowest"]
    out += [
        "",
        f"The lowest motion of a trial that learns is {lowest:.4f} "
        f"({lowest / rule['min_motion']:.2f} x min_motion). Every collapsed trial, every "
        "trial the rule stops and every trial a search stopped (with the rule it ran):"
        if lowest is not None
        else "No trial learns.",
        "",
    ]
    shown = [
        r
        for r in results["rows"]
        if r["ap"] < COLLAPSED_AP or r["stops"] or r["stopped_at"] is not None
    ]
    shown.sort(key=lambda r: (r["motion"] is None, r["motion"] or 0.0))
    out += markdown_table(
        ["trial", "group", "AP", "motion", "stopped by the rule", "stopped by its search"],
        [[r["label"], r["group"], f"{r['ap']:.4f}",
          "" if r["motion"] is None else f"{r['motion']:.4f}", "yes" if r["stops"] else "no",
          "" if r["stopped_at"] is None else f"at {r['stopped_at']}, trained again"]
         for r in shown],
    )  # fmt: skip
    out += [
        "",
        f"Candidate checks: the learners' lowest motion and the collapsed trials that move less "
        f"than {MARGIN} x that (a rule with min_motion there stops them with that margin):",
        "",
    ]
    out += markdown_table(
        ["check at", "window", "learners' lowest motion", "collapsed trials", f"below {MARGIN} x"],
        [[str(f["check_at"]), str(f["window"]),
          "" if f["learners_lowest"] is None else f"{f['learners_lowest']:.4f}",
          str(f["collapsed"]), str(f["below"])] for f in results["frontier"]],
    )  # fmt: skip
    out += _render_cost(results["cost"])
    return "\n".join(out) + "\n"


def _groups_table(groups: dict[str, dict[str, int]]) -> list[str]:
    """The per-group counts of trials, collapses, stops and false stops."""
    return markdown_table(
        ["trials", "count", "collapsed (AP < 0.001)", "stopped by the rule", "of them collapsed",
         "false stops (AP >= 0.01)"],
        [[name, str(g["trials"]), str(g["collapsed"]), str(g["stopped"]), str(g["caught"]),
          f"**{g['false_stops']}**"] for name, g in groups.items()],
    )  # fmt: skip


def _render_cost(cost: list[dict[str, Any]]) -> list[str]:
    """The table of the timed stopped trials and their mean cost relative to a full trial."""
    if not cost:
        return []
    ratio = statistics.fmean(c["stopped_seconds"] / c["full_seconds"] for c in cost)
    out = [
        "",
        "Cost of a stopped trial (trained with the rule and to the end, one after the "
        "other; the child's build + train + eval):",
        "",
    ]
    out += markdown_table(
        ["trial", "stopped at", "stopped s", "full s", "ratio"],
        [[c["label"], str(c["stopped_at"]), f"{c['stopped_seconds']:.1f}",
          f"{c['full_seconds']:.1f}", f"{c['stopped_seconds'] / c['full_seconds']:.2f}"]
         for c in cost],
    )  # fmt: skip
    return out + [
        "",
        f"A stopped trial costs **{100 * ratio:.0f} %** of a full one (target <= 25 %).",
    ]


def render_check(results: dict[str, Any]) -> str:
    """The ``--check`` section: the rule on searches that ran it."""
    rule = results["rule"]
    ran = f"{rule['check_at']}/{rule['window']}/{rule['min_motion']}"
    entry = results["searches_stops"].get(ran, dict(stopped=0, false=[]))
    others = sorted(k for k in results["searches_stops"] if k != ran)
    stopped = sorted(
        (r for r in results["rows"] if r["stopped_at"] is not None and r["search_rule"] == ran),
        key=lambda r: r["label"],
    )
    out = [
        f"### Out-of-sample check: the rule on searches that ran it ({results['machine']})",
        "",
        f"The proxy config's `collapse_rule = {rule}` on the {results['groups']['all']['trials']} "
        f"distinct 1-epoch trials of the searches {', '.join(results['studies'])}, which ran it "
        "after it was chosen: their stops happened during the search. Each trial a search "
        "stopped was trained again to the end (same parameters, seed and data) for the AP it "
        f"would have reached; a stop of a trial that reaches AP >= {LEARNS_AP} is a false stop.",
        "",
    ]
    out += _groups_table(results["groups"])
    lowest = results["learners_lowest"]
    out += [
        "",
        f"Stopped by their search: {entry['stopped']} trial{'' if entry['stopped'] == 1 else 's'}"
        "; false stops: "
        f"**{', '.join(entry['false']) or 'none'}**"
        + (f" (studies that ran other rules: {', '.join(others)})" if others else "")
        + ". "
        + (
            f"The lowest motion of a trial that learns is {lowest:.4f} "
            f"({lowest / rule['min_motion']:.2f} x min_motion)."
            if lowest is not None
            else "No trial learns."
        ),
        "",
    ]
    if stopped:
        out += markdown_table(
            ["stopped trial", "group", "stopped at", "motion", "AP trained to the end"],
            [[r["label"], r["group"], str(r["stopped_at"]),
              "" if r["motion"] is None else f"{r['motion']:.4f}", f"{r['ap']:.4f}"]
             for r in stopped],
        )  # fmt: skip
    out += _render_cost(results["cost"])
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ main
def run(args: argparse.Namespace, *, results_json: Path, results_md: Path) -> int:
    from paploss.errors import StorageError
    from paploss.study.config.early_stop import CollapseRule
    from paploss.study.config.mmcfg import load_config

    cfg_options = getattr(args, "cfg_options", None) or {}
    cfg = load_config(bench_proxy.CONFIG, cfg_options)
    rule = CollapseRule.from_config(cfg.get("collapse_rule"))
    if rule is None:
        print(f"error: {bench_proxy.CONFIG.name} declares no collapse_rule", file=sys.stderr)
        return 2
    bench_proxy.configure(cfg)
    try:
        trials, duplicates = recorded_trials(args.storage, bench_proxy.CONFIG.name, args.study)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not trials:
        print(
            "error: no complete 1-epoch trial of a search of "
            f"{bench_proxy.CONFIG.name} with its result.json in the given storages; "
            "run a search first (paploss-search --config proxy_retinanet_paploss.py)",
            file=sys.stderr,
        )
        return 2
    trainer = bench_proxy.Trainer(
        args.cache, args.workers, data=getattr(args, "data", None), cfg_options=cfg_options
    )
    curves, skipped = complete_curves(trainer, trials)
    results = analyse(rule, curves)
    # Timed on the Trainer's own data and loss (the cost is the training's length, not its loss).
    plain = {
        t["label"]
        for t in trials
        if not t["loss_options"] and (t["data"] or {}).get("source") in (None, trainer.data_source)
    }
    stopped = [r["label"] for r in results["rows"] if r["stops"] and r["label"] in plain]
    results.update(
        studies=sorted({t["label"].rsplit("#", 1)[0] for t in trials}),
        duplicates=duplicates,
        retrained=sum(1 for c in curves if c.retrained),
        skipped=skipped,
        cost=stop_cost(trainer, trials, stopped[: args.timed]),
        machine=machine_summary(),
    )
    write_json(results_json, results)
    check = getattr(args, "check", False)
    text = render_check(results) if check else render(results)
    replace_section(results_md, CHECK_SECTION if check else SECTION, text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--storage",
        action="append",
        default=[],
        help="an Optuna storage URL of finished searches (repeat for several)",
    )
    parser.add_argument("--study", action="append", help="only these studies (default: all)")
    parser.add_argument("--timed", type=int, default=3, help="stopped trials timed (default 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=bench_proxy.CACHE)
    parser.add_argument(
        "--check",
        action="store_true",
        help="an out-of-sample check of the config's rule on searches that ran it: written to "
        f"its own section ({CHECK_SECTION}) and {CHECK_JSON.name}, the evidence section kept",
    )
    parser.add_argument("--results-md", type=Path, default=None, help="default: RESULTS.md")
    parser.add_argument(
        "--results-json",
        type=Path,
        default=None,
        help=f"default: {RESULTS_JSON.name} ({CHECK_JSON.name} with --check)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a check that it runs: a 1 x 3 search on a tiny proxy, then this benchmark on it",
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or args.timed < 0:
        parser.error("--workers must be >= 1 and --timed >= 0")
    if args.smoke:
        with tempfile.TemporaryDirectory(prefix="bench_collapse_smoke_") as tmp:
            return _smoke(args, Path(tmp))
    if not args.storage:
        parser.error("name the searches' storage: --storage sqlite:///path/to/search.db")
    return run(
        args,
        results_json=args.results_json or (CHECK_JSON if args.check else RESULTS_JSON),
        results_md=args.results_md or RESULTS_MD,
    )


def _smoke(args: argparse.Namespace, tmp: Path) -> int:
    """A 1 x 3 search on the tiny proxy (the rule checks at iteration 3 of 4), then the
    benchmark on its storage with one stopped trial timed."""
    import subprocess

    from paploss.proxy import generate_proxy_dataset

    data = tmp / "tiny"
    generate_proxy_dataset(data, seed=0, num_train=8, num_eval=4, num_val=4, image_size=64)
    options = dict(bench_proxy.SMOKE_OPTIONS)
    storage = f"sqlite:///{tmp / 'search.db'}"
    command = [
        sys.executable, "-m", "paploss.study.search",
        "--config", str(bench_proxy.CONFIG), "--data", str(data),
        "--storage", storage, "--study-name", "smoke", "--work-dir", str(tmp / "wd"),
        "--rounds", "1", "--samples-per-round", "3", "--epochs", "1",
        "--cfg-options", *[f"{k}={str(v).replace(' ', '')}" for k, v in options.items()],
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    args.storage, args.study, args.timed, args.workers = [storage], None, 1, 1
    args.cache, args.data, args.cfg_options = tmp / "cache", [str(data)], options
    return run(
        args,
        results_json=args.results_json or tmp / "collapse.json",
        results_md=args.results_md or tmp / "RESULTS.md",
    )


if __name__ == "__main__":
    raise SystemExit(main())
