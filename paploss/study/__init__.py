"""Optuna studies of the Parameterized AP Loss: the search of paper Alg. 1 with one MMDetection
training per trial (``studies/search.py``), the final training with the searched parameters
(``studies/train.py``) and the D_train / D_eval split of a COCO json (``studies/split_coco.py``).

Parts (each module owns its names), from the ground floor up; a part imports its own floor and
the floors below it, never one above (``tests/test_layout.py`` checks it):

- ground floor: ``keys`` (every study/trial attribute name), ``cli`` (value types, shared
  options, the exit-code convention), ``parsers`` (the commands' argument parsers), ``storage``
  (storage URLs, opening a storage with timeouts, the workers' settings check);
- ``data/``: ``coco`` (COCO json checks, reading and the seeded split), ``sources`` (``--data``
  forms, the search and training data, the one split writer, writable outputs);
- ``config/``: ``space`` (the search space: one LossParams per loss head, SpaceOptions,
  LossVariant), ``hyper_space`` (a baseline config's declared ``search_space`` of its own
  hyperparameters), ``loss_slots`` (a config's loss heads and their parameters), ``cfg_options``
  (which ``--cfg-options`` keys a config takes, ``+KEY`` for a new one), ``early_stop`` (the
  CollapseRule a config declares for its search trials), ``mmcfg`` (the mmengine config of a run:
  loading, digest, data, schedule, backbones);
- ``runner/``: ``trial`` (a training run's result contract and parent side), ``devices`` (the
  ``--device`` check, the CPU cores' share per process), ``distributed`` (a training as N ranks of torch.distributed,
  ``--nproc-per-trial``), ``child`` (the child that trains), ``warm`` (the pre-imported process
  that forks every training and its ranks);
- the commands: ``search/`` (``setup``: a worker's typed set-up, SearchPlan and OpenStudy;
  ``record``: the study's record from its creation; ``objective``: one search trial; ``progress``: a worker's callbacks, lines, plot and summary;
  ``records``: dashboard notes, plots, progress lines; ``command``: ``paploss-search``, also run as
  ``python -m paploss.study.search``), ``train`` (``paploss-train``; ``train_params``: where its
  parameters come from), ``split``
  (``paploss-split-coco``);
The reproduction of the paper's ablations (``paploss.reproduce``) is a client of this layer; nothing
here imports it.

Importing this package imports neither mmdet nor optuna-dashboard; the modules that need them
import them when they run.
"""
