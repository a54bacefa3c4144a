"""Names of the attributes the study layer writes to and reads from an Optuna storage.

User attrs are what optuna-dashboard shows for a study or trial; the PPO2 sampler's own keys are
defined in :mod:`paploss.samplers._ppo2._keys` and imported here, so every name a study carries
has one definition. Values are JSON.
"""

from __future__ import annotations

from paploss.samplers._ppo2._keys import USER_ATTR_ROUND, USER_ATTR_YIELDED

# ---- study user attrs (studies/search.py) --------------------------------------------------
SETTINGS = "search_settings"
"""What all workers must agree on; written last, so its presence marks a fully recorded study."""
SPACE_OPTIONS = "space_options"
"""The SpaceOptions (--segments, --shared-params, --fixed-lambda)."""
LOSS_OPTIONS = "loss_options"
"""loss_options set on every head (--loc-score, --no-block-grad)."""
CONFIG = "config"
CFG_OPTIONS = "cfg_options"
DATA = "data"
SAMPLER = "sampler"
EPOCHS = "epochs"
TRAIN_SEED = "train_seed"
LOSS_SLOTS = "loss_slots"
HYPER_SPACE = "hyper_space"
"""A baseline config's declared hyperparameters (HyperSpace.to_json), searched instead of Theta."""
HAND_SET = "hand_set"
"""Trial attr: the trial trains a baseline config's own hyperparameters (its search's first)."""
ARTIFACT_DIR = "artifact_dir"
COMMAND = "command"
"""The command line that created the study (search) or trained the row seed (reproduce)."""

# ---- trial user attrs ------------------------------------------------------------------------
ROUND = USER_ATTR_ROUND
"""The PPO2 round of a sampled trial."""
YIELDED = USER_ATTR_YIELDED
"""Set on a PPO2 trial that gave its process to a retry (it ends PRUNED, trained nothing)."""
WORKER = "worker"
NPROC = "nproc_per_trial"
"""The number of torch.distributed ranks the trial's training ran as (--nproc-per-trial)."""
WORK_DIR = "work_dir"
RETRY_OF = "retry_of"
ERROR = "error"
DIVERGED = "diverged"
DIVERGED_AT = "diverged_at_iteration"
COLLAPSED = "collapsed"
"""True when the config's CollapseRule stopped the trial's training (reward 0)."""
COLLAPSED_AT = "collapsed_at_iteration"
COLLAPSE_RULE = "collapse_rule"
"""The study settings' entry of the CollapseRule its trials apply (absent: none)."""
TRAIN_SECONDS = "train_seconds"
EVAL_SECONDS = "eval_seconds"
STARTUP_SECONDS = "startup_seconds"
ITERATIONS = "iterations"
FINAL_LOSS = "final_loss"
SEED = "seed"
"""The training seed of a reproduction row's trial."""
DEFINITION = "definition"
STATUS = "status"

# ---- trial system attrs ----------------------------------------------------------------------
FAILED_TRIAL = "failed_trial"
"""Written by Optuna's retry callback on a retry: the number of the trial it repeats."""
