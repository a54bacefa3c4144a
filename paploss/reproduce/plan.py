"""The jobs of a reproduction: the searches and trainings of each experiment, in the order they run.

Tab. 1-9 train the rows of :data:`paploss.reproduce.paper_tables.TABLES` (with the searches they
take their params from); Fig. 3 compares repeated PPO2 and random searches (and TPE and CMA-ES
searches in the extended budget), the same sampler seeds for every sampler; Fig. 4 shows the main
search's functions.
"""

from __future__ import annotations

from paploss.reproduce.experiments import Budget, Search, Training
from paploss.reproduce.paper_claims import claim_training_keys
from paploss.reproduce.paper_tables import MAIN, TABLES

EXPERIMENTS = (
    "tab1", "tab2", "tab3", "tab4", "tab5", "tab6", "tab7", "tab8", "tab9", "fig3", "fig4",
    "protocol",
)  # fmt: skip
"""The experiments ``studies/reproduce.py`` accepts (besides ``all``). ``protocol`` (the paper's
40 x 8 search, ~2 h on 2 cores, and its rows) is not part of ``all``: it runs when named."""
ALL_ORDER = (
    "tab2", "tab7", "tab1", "tab4", "tab3", "tab9", "tab5", "tab6", "tab8", "fig3", "fig4",
)  # fmt: skip
"""Order of ``all``: the cheap RetinaNet rows and the main search first, then one search per
ablation row, then the repeated searches of Fig. 3, so that a stopped run has the most tables. In
every plan the RetinaNet jobs run before the Faster R-CNN and Deformable DETR trainings (a proxy
training of those takes about 2x as long)."""


def fig3_searches(budget: Budget) -> dict[str, list[Search]]:
    """Fig. 3: ``{"ppo2": [...], "random": [...], ...}`` for ``budget.fig3_samplers``,
    ``budget.repeats`` searches each with sampler seeds 0 .. repeats - 1 (PPO2's seed 0 is the main
    search); search k of every sampler has seed k, so the samplers are compared pairwise."""
    runs = {"ppo2": [MAIN] + [Search(f"ppo2-seed{k}", seed=k) for k in range(1, budget.repeats)]}
    for sampler in budget.fig3_samplers[1:]:
        runs[sampler] = [
            Search(f"{sampler}-seed{k}", sampler=sampler, seed=k) for k in range(budget.repeats)
        ]
    return runs


def row_seeds(training: Training, budget: Budget) -> int:
    """How many seeds ``training`` trains: ``budget.claim_seeds`` for a row named in a stated
    ordering (both rows of an ordering then train seeds 0 .. claim_seeds - 1, paired by seed),
    ``budget.seeds`` for the others."""
    return budget.claim_seeds if training.key in claim_training_keys() else budget.seeds


def experiment_jobs(name: str, budget: Budget) -> list[Search | Training]:
    """Searches and trainings of one experiment, in the order they run."""
    if name in TABLES:
        jobs: list[Search | Training] = []
        # Closed-form substitutions train several times slower, and the protocol's 40 x 8 search
        # takes hours: after the table's other rows, so that a stopped run has the most rows.
        rows = sorted(
            TABLES[name].rows,
            key=lambda r: (
                any(s.protocol for s in r.training.searches()),
                r.training.substitution is not None,
            ),
        )
        for row in rows:
            jobs += [*row.training.searches(), row.training]
        return jobs
    if name == "fig3":
        runs = fig3_searches(budget)
        return [s for group in zip(*runs.values()) for s in group]
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
