# A small Deformable DETR for the 64 x 64 proxy scenes on CPUs.
#
# One feature level, as in the paper's search (Sec. 4.1: "we also set the number of feature levels
# to 1 to further accelerate the training"). On COCO that level is C5 (stride 32); the proxy
# images are 64 px with 10-28 px digits, where C5 would be a 2 x 2 map. The level here is P2
# (stride 4, a 16 x 16 map of 256 tokens): a 64-channel FPN on C2..C4 of the proxy's frozen
# digit-pretrained ResNet-18 (ProxyResNet, 16 base channels, first three stages) of which only
# the finest output is kept (FinestLevelFPN, paploss.mmdet.neck), so the tokens carry the C3 / C4
# semantics at the C2 resolution. A 64-d transformer (8 heads of 8 channels), 1 encoder and 2
# decoder layers without dropout, 30 queries (<= 4 objects per image), iterative box refinement,
# single stage.
#
# Measured on the proxy (PAPLoss linear preset, one epoch of D_train, AP on D_eval, one torch
# thread; AdamW with the configs' cosine schedule):
# - C3 (8 x 8 tokens), 3 + 3 layers, 100 queries, no refinement, lr 2e-4 constant: AP 0.053
#   (benchmarks/RESULTS.md);
# - C3, 30 queries, box refinement, lr 1e-3 + cosine: AP 0.095 (AP50 0.364, AP75 0.015: loose
#   boxes on the 8 x 8 map);
# - FinestLevelFPN P2 (16 x 16), 2 encoder layers, otherwise as the previous: AP 0.136 (AP50
#   0.439, AP75 0.036);
# - the same without dropout (mmdet's 0.1 regularizes 150-epoch COCO runs, not one proxy epoch)
#   and lr 2e-3: AP 0.228 (AP50 0.627, AP75 0.101), the config here. Process CPU time of that
#   trial (build + train + eval, one thread) 144 s, Faster R-CNN's 107 s.
# - 1 encoder and 2 decoder layers instead of 2 and 3: AP 0.216 (2 + 2: 0.215), training 56-64 s
#   instead of 96 s for the epoch (2 torch threads on an idle 2-core AMD EPYC, two runs): the per-image
#   Hungarian matching of every decoder layer and the encoder's backward were the largest costs
#   (benchmarks/bench_proxy.py --part detectors), the config here. With the batched matching
#   below the epoch trains in 33 s, one trial (build + train + eval) takes 38 s, AP 0.216.
# mmdet's two-stage variant needs a 256-d transformer (its proposal embedding is hard-wired).
#
# bbox_head carries only the settings shared by all losses; the loss configs set its type and
# loss fields (PAPLossDeformableDETRHead with loss_cls=dict(type='ParameterizedAPLoss', ...), or
# BatchedDeformableDETRHead, mmdet's DeformableDETRHead, with loss_cls/loss_bbox/loss_iou). The
# Hungarian matching costs are mmdet's Deformable DETR ones and are the same for every loss.
# BatchedHungarianAssigner (paploss.mmdet.matching) is mmdet's HungarianAssigner with the costs
# of all images of the batch computed at once (scipy still solves each image's block), used by the
# heads' get_targets: the same assignment, losses and gradients (tests/test_detr_matching.py;
# bitwise equal on a proxy batch). One training iteration (model.loss forward + backward on a proxy
# batch of 32, one torch thread, 20 iterations of each interleaved, process CPU time on a loaded
# 2-core AMD EPYC) takes 267 ms instead of mmdet's 331 ms with the PAPLoss head and 244 ms instead
# of 301 ms with the Focal + L1 + GIoU head: about 11 s less per 188-iteration epoch.
embed_dims = 64
num_levels = 1
model = dict(
    type="DeformableDETR",
    num_queries=30,
    num_feature_levels=num_levels,
    with_box_refine=True,
    as_two_stage=False,
    data_preprocessor=dict(
        type="DetDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1,
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
        type="FinestLevelFPN",
        in_channels=[16, 32, 64],
        out_channels=embed_dims,
        num_outs=3,  # P2..P4 are built by the top-down pathway; P2 is returned
    ),
    encoder=dict(
        num_layers=1,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_levels=num_levels, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256, ffn_drop=0.0),
        ),
    ),
    decoder=dict(
        num_layers=2,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0, batch_first=True),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_levels=num_levels, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256, ffn_drop=0.0),
        ),
        post_norm_cfg=None,
    ),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True, offset=-0.5),
    bbox_head=dict(
        type="BatchedDeformableDETRHead",
        num_classes=10,
        embed_dims=embed_dims,
        sync_cls_avg_factor=True,
    ),
    train_cfg=dict(
        assigner=dict(
            type="BatchedHungarianAssigner",
            match_costs=[
                dict(type="FocalLossCost", weight=2.0),
                dict(type="BBoxL1Cost", weight=5.0, box_format="xywh"),
                dict(type="IoUCost", iou_mode="giou", weight=2.0),
            ],
        )
    ),
    # top-20 (query, class) scores per image (a scene holds at most 4 digits; as the other proxies)
    test_cfg=dict(max_per_img=20),
)
