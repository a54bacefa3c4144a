# Proxy schedule: one epoch of D_train, then evaluation on D_eval (the inner loop of the search,
# paper Sec. 3.3 / Algorithm 1). Detector configs set the learning rate; longer proxy runs
# override train_cfg.max_epochs.
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=1)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

# SGD as in the paper: with an adaptive optimizer (Adam) the gradient scale lambda would cancel out
# for the parameters that only the box branch trains.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0001),
    clip_grad=dict(max_norm=35, norm_type=2),
)
# A short linear warm-up (the proxy epoch has only ~64 iterations).
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=16),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
