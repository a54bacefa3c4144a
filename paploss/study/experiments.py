"""The vocabulary of the paper's comparisons: budgets, searches, trainings, rows and tables.

Every table row is a :class:`Row`: a label, the paper's AP / AP50 / AP75 (COCO val2017, in %),
and the :class:`Training` that produces the proxy's number (a config trained with fixed params, a
closed-form substitution, its own baseline losses, or the best params of a :class:`Search`). A
:class:`Budget` says how much a reproduction trains. The paper's tables built from these types are
in :mod:`paploss.study.paper_tables`; the jobs each experiment runs in
:mod:`paploss.study.reproduce_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paploss.study.space import LossVariant, SpaceOptions

RETINANET = "proxy_retinanet_paploss.py"


@dataclass(frozen=True)
class Budget:
    """How much a reproduction trains.

    Attributes:
        name: "quick" or "full".
        rounds, samples: T and S of every search.
        seeds: trainings per row (each reported as mean +- std).
        epochs: epochs of every training (search trials and rows).
        repeats: searches per sampler in Fig. 3.
    """

    name: str
    rounds: int
    samples: int
    seeds: int
    epochs: int
    repeats: int


BUDGETS = {
    "quick": Budget("quick", rounds=2, samples=2, seeds=3, epochs=1, repeats=2),
    "full": Budget("full", rounds=4, samples=4, seeds=3, epochs=1, repeats=4),
}


@dataclass(frozen=True)
class Search:
    """One search (a study of ``studies/search.py``).

    Attributes:
        key: unique name; the study is ``search/<key>``.
        sampler: "ppo2" or "random".
        seed: the sampler's seed.
        options: the search space (M, shared, fixed lambda).
        variant: loss options on every head (loc score, blocked gradient).
        config: config file name in paploss/configs (``cli.CONFIG_DIR``).
    """

    key: str
    sampler: str = "ppo2"
    seed: int = 0
    options: SpaceOptions = field(default_factory=SpaceOptions)
    variant: LossVariant = field(default_factory=LossVariant)
    config: str = RETINANET

    def flags(self) -> list[str]:
        """The search.py flags of the options and the variant."""
        out = ["--sampler", self.sampler, "--seed", str(self.seed)]
        if self.options.num_segments != 5:
            out += ["--segments", str(self.options.num_segments)]
        if self.options.shared:
            out.append("--shared-params")
        if self.options.fixed_lambda is not None:
            out += ["--fixed-lambda", f"{self.options.fixed_lambda:g}"]
        if self.variant.loc_score is not None:
            out += ["--loc-score", self.variant.loc_score]
        if not self.variant.block_grad:
            out.append("--no-block-grad")
        return out


@dataclass(frozen=True)
class Training:
    """What one row trains (``studies/train.py``), once per seed.

    Attributes:
        key: unique name; the seeds are trials of the study ``row/<key>``.
        config: config file name in paploss/configs (``cli.CONFIG_DIR``).
        presets: ``--preset`` values (``NAME`` or ``SLOT=NAME``).
        search: take the params of this search's best trial (and its loss options).
        substitution: a closed-form substitution (``--substitution``).
        block_grad: False adds ``--no-block-grad``.
        definition: how the row's loss is defined, for the report.
    """

    key: str
    config: str = RETINANET
    presets: tuple[str, ...] = ()
    search: Search | None = None
    substitution: str | None = None
    block_grad: bool = True
    definition: str = ""

    def searches(self) -> list[Search]:
        return [self.search] if self.search is not None else []


@dataclass(frozen=True)
class Row:
    """One row of a table: the paper's numbers beside the proxy's training."""

    label: str
    paper: tuple[float, float, float]  # AP, AP50, AP75 in % on COCO val2017
    training: Training
    group: str = ""  # the detector, in Tab. 1 and Tab. 7


@dataclass(frozen=True)
class Table:
    """A table of the paper and the claims about it the report checks."""

    key: str
    title: str
    rows: tuple[Row, ...]
    note: str = ""
