# RetinaNet (frozen digit-pretrained ResNet-18, FPN) on the proxy digits, trained only by the
# Parameterized AP Loss: one epoch of D_train (188 iterations of 32 images), evaluation on D_eval
# (the search's inner loop).
# Final numbers: ``runner.test()`` (the TestLoop) on the held-out val split.
# Data: ``export PAPLOSS_PROXY_ROOT=$(python -m paploss.proxy)`` (see _base_/datasets).
_base_ = [
    "_base_/models/retinanet_r18_fpn_proxy.py",
    "_base_/datasets/proxy_detection.py",
    "_base_/schedules/proxy_1epoch_cosine.py",
    "_base_/proxy_runtime.py",
]

model = dict(
    bbox_head=dict(
        type="PAPLossRetinaHead",
        # The AP loss trains both branches (no loss_bbox); keys: paploss/mmdet/loss.py.
        loss_cls=dict(
            type="ParameterizedAPLoss",
            # Anything LossParams.from_config accepts: dict(preset=...), dict(file="best.json"),
            # LossParams.to_dict() values or the flat search-space values (f1_x1, ..., lambda).
            params=dict(preset="linear"),
            backend="auto",
            loc_score="giou",
            release_compatible=False,
            topk=None,
            block_denominator_grad=True,
        ),
    ),
)
# Search trials whose training has collapsed stop early (paploss.study.config.early_stop): at iteration
# check_at, a loss that moved less than min_motion per iteration (mean absolute change) over the
# last `window` iterations has stopped learning (reward 0). Chosen on the loss curves of recorded
# search trials, every trial a search stopped trained again to the end (benchmarks/RESULTS.md,
# "Early stop of collapsed trials", benchmarks/bench_collapse.py): a trial that learns can stay
# flat for a long time (the least moving one at iterations 38-47 moves 0.0023 and reaches AP 0.08
# at the end; stopped at iteration 30, trials reached 0.05-0.37), so the rule stops only losses
# that have all but stopped, with a margin of 1.5 below every trial that learned.
collapse_rule = dict(check_at=47, window=10, min_motion=0.0015)
