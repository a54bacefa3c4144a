# Baseline of Tab. 1 on the proxy: RetinaNet with Focal Loss + L1 on the box deltas (mmdet's
# RetinaNet defaults), same model, data and schedule as proxy_retinanet_paploss.py.
_base_ = [
    "_base_/models/retinanet_r18_fpn_proxy.py",
    "_base_/datasets/proxy_detection.py",
    "_base_/schedules/proxy_1epoch.py",
    "_base_/proxy_runtime.py",
]

model = dict(
    bbox_head=dict(
        type="RetinaHead",
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    ),
)

# 4 images per iteration (twice the optimizer steps of batch 8 in the same one-epoch budget) and
# SGD lr 0.03, the best of the rates tried (0.01, 0.03, 0.1) for learning from scratch here.
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(optimizer=dict(lr=0.03))
