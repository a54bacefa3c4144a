# The bundled proxy detection data (paploss.proxy): 64 x 64 scenes of scikit-learn digits,
# COCO format, classes '0'..'9'. Splits: train = D_train (search training), eval = D_eval (search
# reward, used by the ValLoop), val = the held-out split for final numbers (used by the TestLoop).
#
# data_root: the folder written by ``python -m paploss.proxy --out DIR`` (or the parent of the
# split folders returned by ``paploss.proxy.generate_proxy_dataset()``). It is taken from the
# environment variable PAPLOSS_PROXY_ROOT when the config is parsed (mmengine's ``{{$VAR:default}}``
# substitution; default 'data/proxy'). Scripts holding a parsed config call
# ``paploss.mmdet._common.set_data_root(cfg, root)``, which rewrites every dataloader and evaluator.
# (No ``import os`` here: mmengine treats configs importing modules it does not recognize as
# standard library, e.g. from a pyenv-based virtualenv, as "lazy import" configs.)
dataset_type = "CocoDataset"
data_root = "{{$PAPLOSS_PROXY_ROOT:data/proxy}}/"
metainfo = dict(classes=("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"))
image_scale = (64, 64)
backend_args = None

# No flips: a mirrored digit is not a digit. The Resize to the native size only records
# scale_factor = 1 (needed to map predictions back) and lets other image sizes be used unchanged.
train_pipeline = [
    dict(type="LoadImageFromFile", backend_args=backend_args),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile", backend_args=backend_args),
    dict(type="Resize", scale=image_scale, keep_ratio=True),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]
# num_workers=0: the images are tiny and decoding them in worker processes costs more than it
# saves on a 2-core machine.
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file="train/annotations.json",
        data_prefix=dict(img="train/images/"),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args,
    ),
)
val_dataloader = dict(
    batch_size=50,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file="eval/annotations.json",
        data_prefix=dict(img="eval/images/"),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args,
    ),
)
test_dataloader = dict(
    batch_size=50,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type,
        metainfo=metainfo,
        data_root=data_root,
        ann_file="val/annotations.json",
        data_prefix=dict(img="val/images/"),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args,
    ),
)

# mmdet's CocoMetric (pycocotools COCOeval). Note: AP_S/AP_M/AP_L use COCO's absolute area
# thresholds (32^2, 96^2 px); the proxy's size classes are relative (see paploss/proxy/__init__.py).
val_evaluator = dict(
    type="CocoMetric",
    ann_file=data_root + "eval/annotations.json",
    metric="bbox",
    format_only=False,
    backend_args=backend_args,
)
test_evaluator = dict(
    type="CocoMetric",
    ann_file=data_root + "val/annotations.json",
    metric="bbox",
    format_only=False,
    backend_args=backend_args,
)
