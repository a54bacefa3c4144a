# Deformable DETR ResNet-50 trained with the Parameterized AP Loss on COCO 2017 (paper Tab. 1:
# 45.3 AP on val2017): the loss replaces focal + L1 + GIoU on every decoder layer; positives from
# mmdet's Hungarian matching (its Deformable DETR costs), lambda on the box branch.
#
# Training settings of the paper (Sec. 4.1) "strictly follow" Deformable DETR [42]: ImageNet-
# pretrained ResNet-50 (torchvision weights), 4 feature levels (the search used 1), 300 queries,
# AdamW lr 2e-4 with batch 32 = 8 GPUs x 4 images, 50 epochs with a decay at epoch 40, DETR's
# multi-scale augmentation (mmdet's deformable-detr_r50_16xb2-50e_coco).
#
# loss_cls.params: the release published no Deformable DETR parameter set. 'linear' (the search's
# initialization) is only a placeholder: replace it by the searched set, e.g.
# model.bbox_head.loss_cls.params=dict(file='work_dirs/search/best.json').
#
# Data: COCO under $COCO_ROOT (default data/coco: annotations/instances_{train,val}2017.json,
# {train,val}2017/).
_base_ = ["./_base_/datasets/coco_detection.py", "./_base_/coco_runtime.py"]

num_gpus = 8
images_per_gpu = 4
max_epochs = 50

model = dict(
    type="DeformableDETR",
    num_queries=300,
    num_feature_levels=4,
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
        type="ResNet",
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type="BN", requires_grad=False),
        norm_eval=True,
        style="pytorch",
        init_cfg=dict(type="Pretrained", checkpoint="torchvision://resnet50"),
    ),
    neck=dict(
        type="ChannelMapper",
        in_channels=[512, 1024, 2048],
        kernel_size=1,
        out_channels=256,
        act_cfg=None,
        norm_cfg=dict(type="GN", num_groups=32),
        num_outs=4,
    ),
    encoder=dict(
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, batch_first=True),
            ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1),
        ),
    ),
    decoder=dict(
        num_layers=6,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=256, num_heads=8, dropout=0.1, batch_first=True),
            cross_attn_cfg=dict(embed_dims=256, batch_first=True),
            ffn_cfg=dict(embed_dims=256, feedforward_channels=1024, ffn_drop=0.1),
        ),
        post_norm_cfg=None,
    ),
    positional_encoding=dict(num_feats=128, normalize=True, offset=-0.5),
    bbox_head=dict(
        type="PAPLossDeformableDETRHead",
        num_classes=80,
        sync_cls_avg_factor=True,
        loss_cls=dict(
            type="ParameterizedAPLoss",
            params=dict(preset="linear"),
            backend="auto",
            loc_score="giou",
            release_compatible=False,
            topk=None,
            block_denominator_grad=True,
        ),
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

# ------------------------------------------------------------------------------ data
backend_args = None
_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
           (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]  # fmt: skip
train_pipeline = [
    dict(type="LoadImageFromFile", backend_args=backend_args),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="RandomFlip", prob=0.5),
    dict(
        type="RandomChoice",
        transforms=[
            [dict(type="RandomChoiceResize", scales=_scales, keep_ratio=True)],
            [
                dict(
                    type="RandomChoiceResize",
                    # The aspect ratio of all images in the train dataset is < 7,
                    # follow the original implementation.
                    scales=[(400, 4200), (500, 4200), (600, 4200)],
                    keep_ratio=True,
                ),
                dict(
                    type="RandomCrop",
                    crop_type="absolute_range",
                    crop_size=(384, 600),
                    allow_negative_crop=True,
                ),
                dict(type="RandomChoiceResize", scales=_scales, keep_ratio=True),
            ],
        ],
    ),
    dict(type="PackDetInputs"),
]
# mmdet's 1333 x 800 test pipeline of the base.
train_dataloader = dict(
    batch_size=images_per_gpu,
    dataset=dict(filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline),
)

# ------------------------------------------------------------------------------ schedule
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            "backbone": dict(lr_mult=0.1),
            "sampling_offsets": dict(lr_mult=0.1),
            "reference_points": dict(lr_mult=0.1),
        }
    ),
)
param_scheduler = [
    dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[40], gamma=0.1)
]
# lr 2e-4 is for 32 images per iteration; --auto-scale-lr rescales it for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=num_gpus * images_per_gpu)

default_hooks = dict(checkpoint=dict(interval=1))
