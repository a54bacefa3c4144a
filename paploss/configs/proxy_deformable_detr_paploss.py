# Deformable DETR (frozen digit-pretrained ResNet-18, one feature level as in the paper's search)
# on the proxy digits, trained only by the Parameterized AP Loss: for every decoder layer one loss
# over all (query, class) entries of the batch, positives from mmdet's Hungarian matching, lambda
# on the box branch. One epoch of D_train, evaluation on D_eval (the search's inner loop).
_base_ = [
    "_base_/models/deformable_detr_r18_proxy.py",
    "_base_/datasets/proxy_detection.py",
    "_base_/schedules/proxy_1epoch_detr.py",
    "_base_/proxy_runtime.py",
]

model = dict(
    bbox_head=dict(
        type="PAPLossDeformableDETRHead",
        # The AP loss trains both branches (no loss_bbox / loss_iou); keys: paploss/mmdet/loss.py.
        loss_cls=dict(
            type="ParameterizedAPLoss",
            # LossParams.from_config: dict(preset=...), dict(file='best.json'), to_dict() values
            # or the flat search-space values; 'linear' is the search's initialization.
            params=dict(preset="linear"),
            backend="auto",
            loc_score="giou",
            release_compatible=False,
            topk=None,
            block_denominator_grad=True,
        ),
    ),
)
