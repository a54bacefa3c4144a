# A small Faster R-CNN for the 64 x 64 proxy scenes on CPUs: the RetinaNet proxy's frozen
# digit-pretrained ResNet-18 (ProxyResNet, 16 base channels, paploss.proxy.backbone), its first
# three stages only, a 64-channel FPN on C2..C4 (strides 4..16), 4 anchors per location with the
# RetinaNet proxy's sizes 12..68 px, RoIAlign to 4 x 4 on P2 (finest_scale=16: RoIs below 32 px,
# i.e. every proxy digit, go to the stride-4 level) and a 2-fc box head of 256 channels with
# class-agnostic regression.
#
# Measured on the proxy (one epoch of D_train, AP on D_eval, one torch thread on a loaded 2-core
# machine; the quiet-machine trial time is benchmarks/bench_proxy.py --part detectors), Cross
# Entropy + L1 at lr 0.02:
# - FPN on C3..C5 (P3, stride 8: an 8 x 8 map) as the RetinaNet proxy, RoIAlign 4 x 4,
#   class-specific regression: AP 0.066 (AP50 0.267, AP75 0.010: the boxes stay loose);
# - FPN on C2..C4 (P2, stride 4: 16 x 16) with class-agnostic regression: AP 0.407 (AP75 0.400);
#   Cross Entropy + GIoU 0.398, the linear PAPLoss config 0.434.
# - Cost: with mmdet's RoI layout (RoIAlign 7 x 7, 128 sampled RoIs per image, 300 proposals) a
#   profile spent ~0.6 s per iteration in mmcv's CPU RoIAlign backward alone. A digit covers
#   2.5-7 px of P2, so 4 x 4 bins; 32 RoIs and 100 proposals per image for 1-4 digits (the 7 x 7 /
#   128 layout was not trained on P2). Going further (16 RoIs, 50 proposals) cost AP: 0.369
#   against 0.434 (linear PAPLoss).
# - Proposals from the 100 best anchors per level before NMS (nms_pre 100 instead of 300): the
#   epoch trains in 65-75 s instead of 83 s at the same AP (0.435; 2 torch threads, idle 2-core
#   AMD EPYC, two runs). 24 or 16 sampled RoIs per image then save only 2-3 s more and cost AP (0.426, 0.422).
# - With the batched steps below the epoch trains in 43 s, one trial (build + train + eval) takes
#   50 s, AP 0.435 (benchmarks/RESULTS.md, "Faster R-CNN and Deformable DETR proxies").
#
# rpn_head / roi_head.bbox_head carry only the settings shared by all losses; the loss configs set
# their types and loss fields (PAPLossRPNHead / PAPLossBBoxHead with
# loss_cls=dict(type='ParameterizedAPLoss', ...), or RPNHead / Shared2FCBBoxHead with
# loss_cls/loss_bbox) and the samplers.
model = dict(
    # FasterRCNN and StandardRoIHead with mmdet's per-image steps batched (paploss.mmdet.batched:
    # RPN proposals, no deep copy of the batch for the RPN, RoI assignment, and in PAPLossRPNHead
    # the anchor targets): bit-identical losses, gradients and predictions
    # (tests/test_frcnn_batched.py). One training iteration (32 images, one torch thread, CPU time
    # of the process, 20 iterations of each interleaved on a loaded 2-core machine): PAPLoss
    # 352 -> 281 ms (x0.80), Cross Entropy + L1 346 -> 310 ms (x0.90: its RPN's RandomSampler
    # keeps mmdet's per-image targets); predict on 50 images 430 -> 396 ms (x0.92).
    type="BatchedFasterRCNN",
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    backbone=dict(
        type="ProxyResNet",
        depth=18,
        base_channels=16,
        num_stages=3,  # C2..C4 only
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(0, 1, 2),
        frozen_stages=3,
        norm_cfg=dict(type="BN", requires_grad=False),
        norm_eval=True,
        style="pytorch",
        pretrain=dict(),
        init_cfg=None,
    ),
    neck=dict(
        type="FPN",
        in_channels=[16, 32, 64],
        out_channels=64,
        num_outs=3,
    ),
    rpn_head=dict(
        type="RPNHead",
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(
            type="AnchorGenerator",
            # sizes 12, 17 px on P2, 24, 34 on P3, 48, 68 on P4 (the RetinaNet proxy's anchors)
            octave_base_scale=3.0,
            scales_per_octave=2,
            ratios=[1.0, 2.0],
            strides=[4, 8, 16],
        ),
        bbox_coder=dict(
            type="DeltaXYWHBBoxCoder",
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[1.0, 1.0, 1.0, 1.0],
        ),
    ),
    roi_head=dict(
        type="BatchedStandardRoIHead",  # StandardRoIHead, proposals assigned batched (see above)
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(type="RoIAlign", output_size=4, sampling_ratio=0),
            out_channels=64,
            featmap_strides=[4, 8, 16],
            finest_scale=16,
        ),
        bbox_head=dict(
            type="Shared2FCBBoxHead",
            in_channels=64,
            fc_out_channels=256,
            roi_feat_size=4,
            num_classes=10,
            bbox_coder=dict(
                type="DeltaXYWHBBoxCoder",
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[0.1, 0.1, 0.2, 0.2],
            ),
            reg_class_agnostic=True,
        ),
    ),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type="MaxIoUAssigner",
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1,
            ),
            sampler=dict(
                type="RandomSampler",
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False,
            ),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        # 1-4 objects per 64 px image: 100 proposals out of the 100 best anchors per level and
        # 32 sampled RoIs per image (mmdet's COCO values are 1000 / 2000 and 512 for ~7 objects
        # per 800 px image).
        rpn_proposal=dict(
            nms_pre=100, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0
        ),
        rcnn=dict(
            assigner=dict(
                type="MaxIoUAssigner",
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1,
            ),
            sampler=dict(
                type="RandomSampler",
                num=32,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True,
            ),
            pos_weight=-1,
            debug=False,
        ),
    ),
    # score_thr=0: a ranking loss does not calibrate the sigmoid scores, so no absolute threshold
    # (the same for every loss, so the comparison is fair); the 20 best detections per image after
    # NMS are kept (at most 4 digits per scene; as the RetinaNet proxy).
    test_cfg=dict(
        rpn=dict(
            nms_pre=100, max_per_img=100, nms=dict(type="nms", iou_threshold=0.7), min_bbox_size=0
        ),
        rcnn=dict(score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5), max_per_img=20),
    ),
)
