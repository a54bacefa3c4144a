"""Optuna studies of the Parameterized AP Loss: the search of paper Alg. 1 with one MMDetection
training per trial (``studies/search.py``), the final training with the searched parameters
(``studies/train.py``) and the D_train / D_eval split of a COCO json (``studies/split_coco.py``).

Modules: ``cli`` (parsers, validation, exit code 2), ``data`` (``--data`` forms, COCO split),
``space`` (one LossParams per loss head), ``mmcfg`` (mmengine configs of a run), ``trial`` (one
training in a child process), ``records`` (dashboard attrs, notes, plots, progress lines),
``search``, ``train`` and ``split`` (the scripts' logic), ``experiments`` (the paper's tables and
figures as data), ``reproduce`` and ``report`` (``studies/reproduce.py`` and its report).
"""
