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
# last `window` iterations has stopped learning (reward 0). Measured on 28 draws of the search
# (benchmarks/RESULTS.md, "Early stop of collapsed trials"): the two collapsed draws whose loss
# stopped moving moved 0.0009 and 0.0019 by iteration 30, the least moving draw that learned
# (AP 0.020) 0.0046.
collapse_rule = dict(check_at=30, window=10, min_motion=0.003)
