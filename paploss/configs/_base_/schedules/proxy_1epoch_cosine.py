# The RetinaNet proxy schedule: one epoch of D_train (6,000 images, 188 iterations of 32), SGD at
# lr 0.1 with a 16-iteration linear warm-up and a cosine decay to 0 at the end of the last epoch.
# Measured on the proxy (frozen pretrained backbone, one epoch): lr 0.1 + cosine AP 0.30,
# lr 0.06 constant 0.29, lr 0.12 constant 0.25. ``prepare_config`` stretches the cosine when a run
# changes ``train_cfg.max_epochs`` (its ``end`` / ``T_max`` are in epochs).
_base_ = ["./proxy_1epoch.py"]

optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=16),
    dict(
        type="CosineAnnealingLR",
        by_epoch=True,
        begin=0,
        end=1,
        T_max=1,
        eta_min=0.0,
        convert_to_iter_based=True,
    ),
]
