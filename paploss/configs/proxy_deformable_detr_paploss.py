# Deformable DETR (ResNet-18, one feature level as in the paper's search, from scratch) on the
# proxy digits, trained only by the Parameterized AP Loss: for every decoder layer one loss over
# all (query, class) entries of the batch, positives from mmdet's Hungarian matching, lambda on
# the box branch. One epoch of D_train, evaluation on D_eval (the search's inner loop).
_base_ = [
    "_base_/models/deformable_detr_r18_proxy.py",
    "_base_/datasets/proxy_detection.py",
    "_base_/schedules/proxy_1epoch.py",
    "_base_/proxy_runtime.py",
]

model = dict(
    bbox_head=dict(
        type="PAPLossDeformableDETRHead",
        # The AP loss trains both branches (no loss_bbox / loss_iou); keys: paploss/mmdet/loss.py.
        loss_cls=dict(
            type="ParameterizedAPLoss",
            # LossParams.from_config: dict(preset=...), dict(file='best.json'), to_dict() values
            # or the flat search-space values; 'linear' is the search's initialization.
            params=dict(preset="linear"),
            backend="auto",
            loc_score="giou",
            release_compatible=False,
            topk=None,
            block_denominator_grad=True,
        ),
    ),
)

# Deformable DETR's optimizer (AdamW 2e-4, gradient clipping 0.1, 0.1 lr on the sampling offsets
# and reference points); no reduced backbone lr: the proxy's backbone is trained from scratch.
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={"sampling_offsets": dict(lr_mult=0.1), "reference_points": dict(lr_mult=0.1)}
    ),
)
