# COCO 2017 at 512 x 512 with SSD-style augmentation, the input recipe of AP-Loss / aLRP Loss that
# the paper's RetinaNet and Faster R-CNN settings follow (Sec. 4.1), in mmdet's SSD512 order:
# zoom-out (Expand), min-IoU random crop, resize to 512 x 512, flip, photometric distortion.
# 8 images per GPU (8 GPUs -> batch 64). Dataloaders and evaluator: ./coco_detection.py.
_base_ = "./coco_detection.py"

backend_args = None
image_size = (512, 512)
train_pipeline = [
    dict(type="LoadImageFromFile", backend_args=backend_args),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Expand", mean=[123.675, 116.28, 103.53], to_rgb=True, ratio_range=(1, 4)),
    dict(type="MinIoURandomCrop", min_ious=(0.1, 0.3, 0.5, 0.7, 0.9), min_crop_size=0.3),
    dict(type="Resize", scale=image_size, keep_ratio=False),
    dict(type="RandomFlip", prob=0.5),
    dict(
        type="PhotoMetricDistortion",
        brightness_delta=32,
        contrast_range=(0.5, 1.5),
        saturation_range=(0.5, 1.5),
        hue_delta=18,
    ),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", backend_args=backend_args),
    dict(type="Resize", scale=image_size, keep_ratio=False),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]
train_dataloader = dict(
    batch_size=8,  # per GPU; 8 GPUs -> 64
    dataset=dict(pipeline=train_pipeline),
)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
