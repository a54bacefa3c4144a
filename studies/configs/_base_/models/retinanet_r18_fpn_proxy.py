# A small RetinaNet for the 128 x 128 proxy scenes, trained from scratch on CPUs: ResNet-18 without
# pretrained weights (init_cfg=None: nothing is downloaded), a 64-channel FPN on C2..C5 (strides
# 4..32, because the smallest digits are ~5 px), two stacked head convs, and 4 anchors per
# location with sizes 6..68 px covering the proxy's object sizes (sqrt(area) 4.5..56 px), GroupNorm
# in the two head convs.
#
# bbox_head carries only the settings shared by all losses; the loss configs set its type and loss
# fields (PAPLossRetinaHead with loss_params/loss_options, or RetinaHead with loss_cls/loss_bbox).
model = dict(
    type="RetinaNet",
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    backbone=dict(
        type="ResNet",
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type="BN", requires_grad=True),
        norm_eval=False,
        style="pytorch",
        init_cfg=None,
    ),
    neck=dict(
        type="FPN",
        in_channels=[64, 128, 256, 512],
        out_channels=64,
        start_level=0,
        add_extra_convs=False,
        num_outs=4,
    ),
    bbox_head=dict(
        type="RetinaHead",
        num_classes=10,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        # GroupNorm in the head convs: trains faster from scratch than mmdet's norm-free head.
        norm_cfg=dict(type="GN", num_groups=16, requires_grad=True),
        anchor_generator=dict(
            type="AnchorGenerator",
            octave_base_scale=1.5,
            scales_per_octave=2,
            ratios=[1.0, 2.0],
            strides=[4, 8, 16, 32],
        ),
        bbox_coder=dict(
            type="DeltaXYWHBBoxCoder",
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[1.0, 1.0, 1.0, 1.0],
        ),
    ),
    train_cfg=dict(
        assigner=dict(
            type="MaxIoUAssigner",
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1,
        ),
        sampler=dict(type="PseudoSampler"),
        allowed_border=-1,
        pos_weight=-1,
        debug=False,
    ),
    # score_thr=0: a ranking loss does not calibrate the sigmoid scores, so no absolute threshold;
    # the 100 best detections per image after NMS are kept (COCO's maxDets).
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.0,
        nms=dict(type="nms", iou_threshold=0.5),
        max_per_img=100,
    ),
)
