"""MMDetection 3.x integration, loaded through
``custom_imports=dict(imports=['paploss.mmdet'], allow_failed_imports=False)``.

Importing this package registers, in mmdet's ``MODELS`` registry, the loss
``'ParameterizedAPLoss'`` (``paploss.mmdet.loss``; a head's
``loss_cls=dict(type='ParameterizedAPLoss', params=..., loc_score=..., loss_weight=...)``), the
heads it trains (``PAPLossRetinaHead``, ``PAPLossRPNHead``, ``PAPLossBBoxHead``,
``PAPLossDeformableDETRHead``), ``ProxyResNet`` and ``FinestLevelFPN`` (``paploss.mmdet.neck``), the
batched DETR matching (``paploss.mmdet.matching``: ``BatchedDeformableDETRHead``, and
``BatchedHungarianAssigner`` in ``TASK_UTILS``), ``BatchedFasterRCNN`` and
``BatchedStandardRoIHead`` (``paploss.mmdet.batched``: mmdet's per-image RPN and RoI-assignment
steps batched, identical results), and installs the checkpoint loader that works
under torch >= 2.6 (``paploss.mmdet.checkpoint``).
"""

# Imported for their side effects: registration and the weights_only-safe checkpoint loader.
from paploss.mmdet import (  # noqa: F401
    backbone,
    batched,
    checkpoint,
    deformable_detr,
    faster_rcnn,
    loss,
    matching,
    neck,
    retinanet,
)
