"""The jobs of a reproduction: the searches and trainings of each experiment, in the order they run.

Tab. 1-7 train the rows of :data:`paploss.study.paper_tables.TABLES` (with the searches they take
their params from); Fig. 3 compares repeated PPO2 and random searches; Fig. 4 shows the main
search's functions.
"""

from __future__ import annotations

from paploss.study.experiments import Budget, Search, Training
from paploss.study.paper_tables import MAIN, TABLES

EXPERIMENTS = ("tab1", "tab2", "tab3", "tab4", "tab5", "tab6", "tab7", "fig3", "fig4")
"""The experiments ``studies/reproduce.py`` accepts (besides ``all``)."""
ALL_ORDER = ("tab2", "tab7", "tab1", "tab4", "tab3", "tab5", "tab6", "fig3", "fig4")
"""Order of ``all``: the cheap RetinaNet rows and the main search first, then one search per
ablation row, then the repeated searches of Fig. 3, so that a stopped run has the most tables. In
every plan the RetinaNet jobs run before the Faster R-CNN and Deformable DETR trainings (a proxy
training of those takes 3-8x as long)."""


def fig3_searches(budget: Budget) -> dict[str, list[Search]]:
    """Fig. 3: ``{"ppo2": [...], "random": [...]}``, ``budget.repeats`` searches each (PPO2's first
    is the main search)."""
    ppo2 = [MAIN] + [Search(f"ppo2-seed{k}", seed=k) for k in range(1, budget.repeats)]
    random = [Search(f"random-seed{k}", sampler="random", seed=k) for k in range(budget.repeats)]
    return {"ppo2": ppo2, "random": random}


def experiment_jobs(name: str, budget: Budget) -> list[Search | Training]:
    """Searches and trainings of one experiment, in the order they run."""
    if name in TABLES:
        jobs: list[Search | Training] = []
        # Closed-form substitutions train several times slower: after the table's other rows.
        rows = sorted(TABLES[name].rows, key=lambda r: r.training.substitution is not None)
        for row in rows:
            jobs += [*row.training.searches(), row.training]
        return jobs
    if name == "fig3":
        runs = fig3_searches(budget)
        return [s for pair in zip(runs["ppo2"], runs["random"]) for s in pair]
    if name == "fig4":
        return [MAIN]
    raise ValueError(f"unknown experiment {name!r}; choose from {EXPERIMENTS} or 'all'")


def plan(names: list[str], budget: Budget) -> list[Search | Training]:
    """The jobs of the experiments ``names`` (``all`` expanded), each once, in order."""
    expanded: list[str] = []
    for name in names:
        expanded += list(ALL_ORDER) if name == "all" else [name]
    jobs: list[Search | Training] = []
    seen: set[tuple[str, str]] = set()
    for name in expanded:
        for job in experiment_jobs(name, budget):
            key = (type(job).__name__, job.key)
            if key not in seen:
                seen.add(key)
                jobs.append(job)
    return sorted(jobs, key=lambda job: "retinanet" not in job.config)
