# Baseline of Tab. 1 on the proxy: Faster R-CNN with Cross Entropy + L1 (mmdet 3.x defaults: L1 on
# the box deltas of the RPN and the R-CNN head), same model, data and schedule as
# proxy_faster_rcnn_paploss.py (but mmdet's usual RPN sampler: 256 anchors per image).
_base_ = [
    "_base_/models/faster_rcnn_r18_fpn_proxy.py",
    "_base_/datasets/proxy_detection.py",
    "_base_/schedules/proxy_1epoch_cosine.py",
    "_base_/proxy_runtime.py",
]

model = dict(
    rpn_head=dict(
        type="RPNHead",
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type="L1Loss", loss_weight=1.0),
    ),
    roi_head=dict(
        bbox_head=dict(
            type="Shared2FCBBoxHead",
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
    ),
)
# lr 0.02, as the PAPLoss config (the schedule's 0.1 is the RetinaNet proxy's). One epoch of
# D_train, AP on D_eval, one torch thread: lr 0.02 0.407 (AP50 0.764, AP75 0.400); lr 0.1 collapsed
# the R-CNN head within 20 iterations on the FPN C3..C5 variant (AP 0.000; 0.066 at lr 0.02 there).
# Box coding: mmdet's (RPN stds 1, R-CNN stds (0.1, 0.1, 0.2, 0.2)); not swept.
optim_wrapper = dict(optimizer=dict(lr=0.02))
