"""MMDetection 3.x integration, loaded through
``custom_imports=dict(imports=['paploss.mmdet'], allow_failed_imports=False)``.

Importing this package registers the Parameterized AP Loss heads with mmdet's ``MODELS`` registry
and installs the checkpoint loader that works under torch >= 2.6 (``paploss.mmdet.checkpoint``).
"""

# Imported for their side effects: registration and the weights_only-safe checkpoint loader.
from paploss.mmdet import backbone, checkpoint, deformable_detr, faster_rcnn, retinanet  # noqa: F401
