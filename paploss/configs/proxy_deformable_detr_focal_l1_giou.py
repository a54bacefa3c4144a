# Baseline of Tab. 1 on the proxy: Deformable DETR with Focal Loss + L1 + GIoU (mmdet's weights
# 2 / 5 / 2 on every decoder layer), same model, matching, data and schedule as
# proxy_deformable_detr_paploss.py.
_base_ = [
    "_base_/models/deformable_detr_r18_proxy.py",
    "_base_/datasets/proxy_detection.py",
    "_base_/schedules/proxy_1epoch.py",
    "_base_/proxy_runtime.py",
]

model = dict(
    bbox_head=dict(
        type="DeformableDETRHead",
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(type="L1Loss", loss_weight=5.0),
        loss_iou=dict(type="GIoULoss", loss_weight=2.0),
    ),
)

# Deformable DETR's optimizer, as in proxy_deformable_detr_paploss.py.
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={"sampling_offsets": dict(lr_mult=0.1), "reference_points": dict(lr_mult=0.1)}
    ),
)
