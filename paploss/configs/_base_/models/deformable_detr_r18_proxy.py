# A small Deformable DETR for the 64 x 64 proxy scenes on CPUs.
#
# One feature level, as in the paper's search (Sec. 4.1: "we also set the number of feature levels
# to 1 to further accelerate the training"). On COCO that level is C5 (stride 32); the proxy
# images are 64 px with 10-28 px digits, where C5 would be a 2 x 2 map, so the proxy uses C3
# (stride 8, an 8 x 8 map of 64 tokens) of the proxy's frozen digit-pretrained ResNet-18
# (ProxyResNet, 16 base channels, first two stages), a 64-d transformer (8 heads of 8 channels), 3
# encoder and 3 decoder layers, 100 queries (<= 4 objects per image), no box refinement, single
# stage.
#
# bbox_head carries only the settings shared by all losses; the loss configs set its type and
# loss fields (PAPLossDeformableDETRHead with loss_cls=dict(type='ParameterizedAPLoss', ...), or
# DeformableDETRHead with loss_cls/loss_bbox/loss_iou). The Hungarian matching costs are mmdet's
# Deformable DETR ones and are the same for every loss.
embed_dims = 64
num_levels = 1
model = dict(
    type="DeformableDETR",
    num_queries=100,
    num_feature_levels=num_levels,
    with_box_refine=False,
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
        num_stages=2,  # only C2, C3 are computed: C3 is the single level
        strides=(1, 2),
        dilations=(1, 1),
        out_indices=(1,),
        frozen_stages=2,
        norm_cfg=dict(type="BN", requires_grad=False),
        norm_eval=True,
        style="pytorch",
        pretrain=dict(),
        init_cfg=None,
    ),
    neck=dict(
        type="ChannelMapper",
        in_channels=[32],
        kernel_size=1,
        out_channels=embed_dims,
        act_cfg=None,
        norm_cfg=dict(type="GN", num_groups=32),
        num_outs=num_levels,
    ),
    encoder=dict(
        num_layers=3,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_levels=num_levels, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256, ffn_drop=0.1),
        ),
    ),
    decoder=dict(
        num_layers=3,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.1, batch_first=True),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_levels=num_levels, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=256, ffn_drop=0.1),
        ),
        post_norm_cfg=None,
    ),
    positional_encoding=dict(num_feats=embed_dims // 2, normalize=True, offset=-0.5),
    bbox_head=dict(
        type="DeformableDETRHead",
        num_classes=10,
        embed_dims=embed_dims,
        sync_cls_avg_factor=True,
    ),
    train_cfg=dict(
        assigner=dict(
            type="HungarianAssigner",
            match_costs=[
                dict(type="FocalLossCost", weight=2.0),
                dict(type="BBoxL1Cost", weight=5.0, box_format="xywh"),
                dict(type="IoUCost", iou_mode="giou", weight=2.0),
            ],
        )
    ),
    test_cfg=dict(max_per_img=100),
)
