"""The vocabulary of the paper's comparisons: budgets, searches, trainings, rows and tables.

Every table row is a :class:`Row`: a label, the paper's AP / AP50 / AP75 (COCO val2017, in %),
and the :class:`Training` that produces the proxy's number (a config trained with fixed params, a
closed-form substitution, its own baseline losses, or the best params of a :class:`Search`). A
:class:`Budget` says how much a reproduction trains. The paper's tables built from these types are
in :mod:`paploss.reproduce.paper_tables`; the jobs each experiment runs in
:mod:`paploss.reproduce.plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paploss.proxy.settings import ProxySettings
from paploss.study.config.space import LossVariant, SpaceOptions

RETINANET = "proxy_retinanet_paploss.py"
DATASETS = {"clutter": ProxySettings.clutter}
"""The generated datasets a job may name besides the run's ``--data`` (paper Tab. 8's other
dataset): name -> its :class:`~paploss.proxy.settings.ProxySettings`."""


def dataset_settings(name: str) -> ProxySettings:
    """The settings of the generated dataset ``name`` (a key of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {tuple(DATASETS)}")
    return DATASETS[name]()


@dataclass(frozen=True)
class Budget:
    """How much a reproduction trains.

    Attributes:
        name: "quick", "full" or "extended".
        rounds, samples: T and S of every search but the protocol's.
        protocol_rounds, protocol_samples: T and S of the paper's full search protocol (the
            ``protocol`` experiment: T = 40, S = 8 as in the paper, Sec. 4.1).
        seeds: trainings per row (seeds 0 .. seeds - 1, each row reported as mean +- std).
        claim_seeds: trainings of the rows named in a stated ordering
            (:func:`paploss.reproduce.paper_claims.claim_training_keys`), seeds 0 .. claim_seeds - 1,
            so that the paired test of every ordering has this many pairs (0: ``seeds``).
        epochs: epochs of every training (search trials and rows).
        repeats: searches per sampler in Fig. 3 (sampler seeds 0 .. repeats - 1, the same seeds
            for every sampler).
        fig3_samplers: the samplers of Fig. 3 (the first is PPO2, compared with each other one).
        storage_name: the default storage and work dir are ``CACHE/reproduce/<storage_name>.db``
            and ``CACHE/reproduce/<storage_name>/``: a budget whose jobs extend another's (the
            same searches and seeds, and more) shares its storage and so continues its run.
    """

    name: str
    rounds: int
    samples: int
    seeds: int
    epochs: int
    repeats: int
    claim_seeds: int = 0
    protocol_rounds: int = 40
    protocol_samples: int = 8
    fig3_samplers: tuple[str, ...] = ("ppo2", "random")
    storage_name: str = ""

    def __post_init__(self) -> None:
        if self.claim_seeds == 0:
            object.__setattr__(self, "claim_seeds", self.seeds)
        if self.claim_seeds < self.seeds:
            raise ValueError(f"Budget.claim_seeds {self.claim_seeds} < seeds {self.seeds}")
        if not self.storage_name:
            object.__setattr__(self, "storage_name", self.name)
        if self.fig3_samplers[:1] != ("ppo2",):
            raise ValueError("Budget.fig3_samplers: the first sampler is 'ppo2'")


BUDGETS = {
    "quick": Budget(
        "quick",
        rounds=2,
        samples=2,
        seeds=3,
        epochs=1,
        repeats=2,
        protocol_rounds=3,
        protocol_samples=2,
    ),
    "full": Budget("full", rounds=4, samples=4, seeds=3, epochs=1, repeats=6, claim_seeds=5),
    "extended": Budget(
        "extended",
        rounds=4,
        samples=4,
        seeds=3,
        epochs=1,
        repeats=6,
        claim_seeds=5,
        fig3_samplers=("ppo2", "random", "tpe", "cmaes"),
        storage_name="full",
    ),
}
"""quick: a test of the whole chain; full: the report of docs/reproduction.md; extended: full plus
TPE and CMA-ES curves in Fig. 3 (the same sampler seeds), in full's storage, so it continues a
finished full run and trains only the added searches."""


@dataclass(frozen=True)
class Search:
    """One search (a study of ``studies/search.py``).

    Attributes:
        key: unique name; the study is ``search/<key>``.
        sampler: "ppo2", "random", "tpe" or "cmaes" (:data:`paploss.samplers.SAMPLER_NAMES`).
        seed: the sampler's seed.
        options: the search space (M, shared, fixed lambda).
        variant: loss options on every head (loc score, blocked gradient).
        config: config file name in paploss/configs (``cli.CONFIG_DIR``).
        dataset: "" (the run's ``--data``) or a generated dataset of :data:`DATASETS`.
        protocol: True for the paper's full protocol (``Budget.protocol_rounds`` x
            ``protocol_samples``), False for the budget's ``rounds`` x ``samples``.
    """

    key: str
    sampler: str = "ppo2"
    seed: int = 0
    options: SpaceOptions = field(default_factory=SpaceOptions)
    variant: LossVariant = field(default_factory=LossVariant)
    config: str = RETINANET
    dataset: str = ""
    protocol: bool = False

    def shape(self, budget: Budget) -> tuple[int, int]:
        """(rounds, samples per round) of this search under ``budget``."""
        if self.protocol:
            return budget.protocol_rounds, budget.protocol_samples
        return budget.rounds, budget.samples

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
        dataset: "" (the run's ``--data``) or a generated dataset of :data:`DATASETS` (trained on
            its D_train + D_eval, evaluated on its val).
    """

    key: str
    config: str = RETINANET
    presets: tuple[str, ...] = ()
    search: Search | None = None
    substitution: str | None = None
    block_grad: bool = True
    definition: str = ""
    dataset: str = ""

    def searches(self) -> list[Search]:
        return [self.search] if self.search is not None else []


@dataclass(frozen=True)
class Row:
    """One row of a table: the paper's numbers beside the proxy's training."""

    label: str
    paper: tuple[float, float, float]  # AP, AP50, AP75 in % on COCO val2017 (nan: not given)
    training: Training
    group: str = ""  # the detector, in Tab. 1 and Tab. 7


@dataclass(frozen=True)
class Table:
    """A table of the paper and the claims about it the report checks."""

    key: str
    title: str
    rows: tuple[Row, ...]
    note: str = ""
    metric: str = "AP"  # the metric of its orderings and claims ("AP50" in Tab. 8)
