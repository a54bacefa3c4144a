"""Optuna studies of the Parameterized AP Loss: the search of paper Alg. 1 with one MMDetection
training per trial (``studies/search.py``), the final training with the searched parameters
(``studies/train.py``), the D_train / D_eval split of a COCO json (``studies/split_coco.py``) and
the reproduction of the paper's ablations (``studies/reproduce.py``).

Modules:

- ``cli``: parsers and argument checks; ``keys``: every study/trial attribute name;
- ``storage``: storage URLs, opening a storage with timeouts, the workers' settings check;
- ``data``: ``--data`` forms, COCO validation and split, writable outputs;
- ``space``: the search space (one LossParams per loss head, SpaceOptions, LossVariant);
- ``mmcfg``: mmengine configs of a run; ``trial``: one training and its TrialResult;
  ``warm``: the pre-imported process that forks every training;
- ``objective``: one search trial; ``progress``: a search worker's lines, plot and summary;
  ``records``: dashboard notes, plots, progress lines;
- ``search``, ``train``, ``split``: the scripts' logic;
- ``experiments``, ``reproduce``, ``report``: the paper's tables as data, their reproduction and
  its report.
"""
