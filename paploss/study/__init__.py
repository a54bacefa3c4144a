"""Optuna studies of the Parameterized AP Loss: the search of paper Alg. 1 with one MMDetection
training per trial (``studies/search.py``), the final training with the searched parameters
(``studies/train.py``), the D_train / D_eval split of a COCO json (``studies/split_coco.py``) and
the reproduction of the paper's ablations (``studies/reproduce.py``).

Modules (each owns its names; the arrows of the imports point down this list):

- ``keys``: every study/trial attribute name; ``cli``: value types, shared options, the exit-code
  convention; ``parsers``: the scripts' argument parsers;
- ``storage``: storage URLs, opening a storage with timeouts, the workers' settings check;
- ``coco``: COCO json checks, reading and the seeded split; ``data``: ``--data`` forms, the search
  and training data, writable outputs;
- ``space``: the search space (one LossParams per loss head, SpaceOptions, LossVariant);
- ``loss_slots``: a config's loss heads and their parameters; ``cfg_options``: which
  ``--cfg-options`` keys a config takes (``+KEY`` for a new one); ``mmcfg``: the mmengine config
  of a run (loading, digest, data, schedule, backbones);
- ``distributed``: a training as N ranks of torch.distributed (``--nproc-per-trial``);
- ``trial``: a training run's result contract and parent side; ``devices``: the ``--device``
  check; ``child``: the child that trains; ``early_stop``: the CollapseRule that ends a
  collapsed search trial early;
  ``warm``: the pre-imported process that forks every training (and its ranks);
- ``search_setup``: a search worker's typed set-up (SearchPlan, OpenStudy); ``objective``: one
  search trial; ``progress``: a worker's callbacks, lines, plot and summary; ``records``:
  dashboard notes, plots, progress lines;
- ``search``, ``train``, ``split``: the scripts' logic;
- ``experiments`` (types, budgets), ``paper_tables`` (the paper's numbers and claims),
  ``reproduce_plan``, ``reproduce_runner``, ``reproduce_lock`` (one reproduction per storage),
  ``reproduce``: the reproduction; ``report_tables``, ``report_figures``, ``report_stats``
  (the paired tests of the stated orderings), ``report_paths`` (paths as the user would type
  them), ``report``: its report.

Importing this package imports neither mmdet nor optuna-dashboard; the modules that need them
import them when they run.
"""
