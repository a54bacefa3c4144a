# The Deformable DETR proxy schedule: one epoch of D_train (188 iterations of 32) with Deformable
# DETR's optimizer (AdamW, weight decay 1e-4, gradient clipping 0.1, 0.1x lr on the sampling
# offsets and reference points) at lr 2e-3, and the RetinaNet proxy's 16-iteration linear warm-up
# and cosine decay to 0 at the end of the last epoch (proxy_1epoch_cosine.py). Measured on the
# proxy (PAPLoss linear preset, D_eval AP after one epoch; the model steps are listed in
# _base_/models/deformable_detr_r18_proxy.py): mmdet's lr 2e-4 constant 0.053 (the C3 model),
# 1e-3 + cosine 0.136 (with dropout 0.1), 2e-3 + cosine 0.228 (without dropout). lr and dropout
# were changed together; the sweep is not finer than that.
_base_ = ["./proxy_1epoch_cosine.py"]

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={"sampling_offsets": dict(lr_mult=0.1), "reference_points": dict(lr_mult=0.1)}
    ),
)
