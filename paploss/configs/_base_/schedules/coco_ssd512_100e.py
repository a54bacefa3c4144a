# The 100-epoch schedule of AP-Loss / aLRP Loss at batch 64 (8 GPUs x 8 images): SGD (momentum 0.9,
# weight decay 1e-4), 500 warm-up iterations, learning rate / 10 at epochs 75 and 95 (our reading of
# those papers; the paper does not list the steps). Children set optim_wrapper.optimizer.lr.
max_epochs = 100
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=5)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0001),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[75, 95], gamma=0.1
    ),
]
# The learning rates of the children are for 64 images per iteration; enable (or mmdet's
# --auto-scale-lr) to rescale them for other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=64)
