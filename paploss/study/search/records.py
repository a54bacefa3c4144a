"""What a study shows in optuna-dashboard: trial user attrs, notes, plots and progress lines.

Per trial (set by ``studies/search.py``):

- user attrs ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl`` (mmdet's bbox mAP fractions,
  -1 where COCOeval has no ground truth of that size), ``train_seconds``, ``eval_seconds``,
  ``diverged``, ``lambda`` (``<slot>/lambda`` per head for several heads), ``iterations``,
  ``work_dir``, ``worker``; PPO2 adds ``ppo2_round``, ``ppo2_sigma``, ``ppo2_mean``;
- intermediate values: the mean training loss per iteration bucket (``trial.report``);
- a note with the control points of the five functions as a table (:func:`params_note`);
- the artifact ``functions.png``, the five functions in the style of paper Fig. 4
  (:func:`plot_functions`).

Per study: user attrs with the config, data and sampler settings; a note; the artifact
``best_so_far.png``, the best AP so far per round (paper Fig. 3 style, :func:`plot_best_so_far`;
optuna-dashboard shows it among the study's artifacts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paploss.params import FUNCTION_ROLES, LossParams
from paploss.study import keys
from paploss.study.config.early_stop import COLLAPSED_AP

FUNCTION_TITLES = (
    "f1: f(l_i; θ1)",
    "f2: f(s_j - s_i; θ2)",
    "f3: f(l_j; θ3)",
    "f4: f(s_j - s_i; θ4)",
    "f5: f(l_i; θ5)",
)
BEST_PLOT_NAME = "best_so_far.png"


def _fmt(v: float) -> str:
    return f"{v:.4f}".rstrip("0").rstrip(".") if v not in (0.0, 1.0) else f"{v:g}"


def lambda_attrs(params: Mapping[str, LossParams]) -> dict[str, float]:
    """``{"lambda": λ}`` for one head, ``{"<slot>/lambda": λ, ...}`` for several."""
    return {
        (f"{slot}/lambda" if slot else "lambda"): p.gradient_scale for slot, p in params.items()
    }


def params_note(params: Mapping[str, LossParams], heading: str) -> str:
    """Markdown: per head, λ and a table of the five functions' control points (x, y)."""
    lines = [f"## {heading}", ""]
    for slot, p in params.items():
        if slot:
            lines += [f"### {slot}", ""]
        m = p.num_segments
        lines.append(
            f"gradient scale λ = {p.gradient_scale:.4g} (θ_λ = {p.theta_lambda:.4f}); "
            f"control points (x_k, y_k), k = 0..{m}:"
        )
        lines.append("")
        lines.append("| function | " + " | ".join(f"k={k}" for k in range(m + 1)) + " |")
        lines.append("|---|" + "---|" * (m + 1))
        for i, f in enumerate(p.functions):
            xs, ys = f.xs.tolist(), f.ys.tolist()
            cells = [f"({_fmt(x)}, {_fmt(y)})" for x, y in zip(xs, ys)]
            lines.append(f"| {FUNCTION_TITLES[i]} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Roles (Eq. (6)): " + "; ".join(FUNCTION_ROLES))
    return "\n".join(lines)


def plot_functions(params: Mapping[str, LossParams], path: Path, title: str) -> Path:
    """PNG of the five functions of every head (paper Fig. 4 style): the piecewise-linear curve
    with its control points, and y = x (the search's initialization) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(params)
    fig, axes = plt.subplots(rows, 5, figsize=(15, 3.1 * rows + 0.5), squeeze=False)
    for r, (slot, p) in enumerate(params.items()):
        for i, f in enumerate(p.functions):
            ax = axes[r][i]
            xs, ys = f.xs.tolist(), f.ys.tolist()
            ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6")
            ax.plot(xs, ys, "-o", lw=1.8, ms=3.5, color="C0")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
            name = FUNCTION_TITLES[i]
            ax.set_title(f"{slot}: {name}" if slot else name, fontsize=10)
            ax.tick_params(labelsize=8)
        axes[r][0].set_ylabel(f"λ = {p.gradient_scale:.3g}", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ rounds
def trial_rounds(trials: Sequence[Any], samples_per_round: int) -> list[tuple[int, Any]]:
    """``[(round, trial)]`` of the COMPLETE trials with a value.

    The round is the PPO2 round (user attr ``ppo2_round``) when the trial has one; trials of other
    samplers are grouped into rounds of ``samples_per_round`` in order of completion.
    """
    from optuna.trial import TrialState

    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
    out = []
    for index, t in enumerate(done):
        r = t.user_attrs.get(keys.ROUND)
        out.append((int(r) if r is not None else index // samples_per_round, t))
    return out


def best_so_far(trials: Sequence[Any], samples_per_round: int) -> list[dict[str, Any]]:
    """Per round: ``{"round", "best", "best_trial", "mean", "values", "trials"}``; ``best`` is the
    best AP of all rounds up to and including this one (paper Fig. 3)."""
    by_round: dict[int, list[Any]] = {}
    for r, t in trial_rounds(trials, samples_per_round):
        by_round.setdefault(r, []).append(t)
    rows = []
    best, best_trial = -math.inf, None
    for r in sorted(by_round):
        ts = by_round[r]
        for t in ts:
            if t.value > best:
                best, best_trial = t.value, t.number
        values = [float(t.value) for t in ts]
        rows.append(
            {
                "round": r,
                "best": best,
                "best_trial": best_trial,
                "mean": sum(values) / len(values),
                "values": values,
                "trials": [t.number for t in ts],
            }
        )
    return rows


def plot_best_so_far(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """PNG: best AP so far per round (line), each sample's AP (dots) and the round mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if rows:
        xs = [r["round"] + 1 for r in rows]
        for x, r in zip(xs, rows):
            ax.scatter([x] * len(r["values"]), r["values"], s=12, color="0.6", zorder=2)
        ax.plot(xs, [r["mean"] for r in rows], "-", color="C1", lw=1, label="round mean")
        ax.plot(xs, [r["best"] for r in rows], "-o", color="C0", lw=2, ms=4, label="best so far")
        ax.legend(loc="lower right")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("search round (1 = first)")
    ax.set_ylabel("AP on D_eval (bbox mAP)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ artifacts
def update_study_artifact(study: Any, artifact_store: Any, file_path: Path) -> list[str]:
    """Keep one study artifact per file name up to date: upload ``file_path`` the first time,
    afterwards overwrite the stored content of the artifact(s) with that file name (so the study
    does not collect one copy per update). Returns the artifact ids."""
    import io

    from optuna.artifacts import get_all_artifact_meta, upload_artifact

    ids = [m.artifact_id for m in get_all_artifact_meta(study) if m.filename == file_path.name]
    if not ids:
        return [
            upload_artifact(
                artifact_store=artifact_store, file_path=str(file_path), study_or_trial=study
            )
        ]
    content = file_path.read_bytes()
    for artifact_id in ids:
        artifact_store.write(artifact_id, io.BytesIO(content))
    return ids


# ------------------------------------------------------------------------------ progress
def format_duration(seconds: float | None) -> str:
    """``1h02m03s`` / ``2m05s`` / ``7s``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def progress_line(
    *,
    trial_number: int,
    round_index: int | None,
    rounds: int,
    ap: float,
    diverged: bool,
    best: float,
    best_trial: int | None,
    complete: int,
    total: int,
    elapsed: float,
    eta: float | None,
    retry_of: int | None = None,
    collapsed_at: int | None = None,
) -> str:
    """One line per finished trial: round, trial, AP, best so far, elapsed, ETA. A diverged
    trial is tagged so, one the CollapseRule stopped ``(collapsed, stopped at iteration N)``, and
    one that trained to the end with AP below ``COLLAPSED_AP`` ``(collapsed, trained to the
    end)``: the rule stops only the trainings whose loss has stopped moving."""
    rnd = f"round {round_index + 1}/{rounds}" if round_index is not None else "round ?"
    tag = ""
    if collapsed_at is not None:
        tag = f" (collapsed, stopped at iteration {collapsed_at})"
    elif diverged:
        tag = " (diverged)"
    elif ap < COLLAPSED_AP:
        tag = " (collapsed, trained to the end)"
    retry = f" (retry of {retry_of})" if retry_of is not None else ""
    best_text = f"{best:.4f} (trial {best_trial})" if best_trial is not None else "-"
    return (
        f"[search] {rnd} | trial {trial_number}{retry} | AP {ap:.4f}{tag} | best {best_text} | "
        f"complete {complete}/{total} | elapsed {format_duration(elapsed)} | "
        f"ETA {format_duration(eta)}"
    )


# ------------------------------------------------------------------------------ optuna-dashboard
def dashboard_note(study_or_trial: Any, text: str) -> bool:
    """Save ``text`` as the optuna-dashboard note of a study or trial; False (nothing saved) when
    the optional ``optuna-dashboard`` package is not installed."""
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return False
    save_note(study_or_trial, text)
    return True
