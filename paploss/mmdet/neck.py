"""``FinestLevelFPN``: an FPN that returns only its finest level, for one-level detectors.

The Deformable DETR proxy attends to one feature level (as the paper's search, Sec. 4.1). On the
64 x 64 proxy scenes a backbone stage alone is either too coarse (C3: an 8 x 8 map, where the
decoder's boxes stay loose) or too shallow (C2: 16 channels of the first stage). This neck keeps
the FPN's top-down pathway, so its one output P2 (stride 4) carries the C3 / C4 semantics at the
C2 resolution.
"""

from __future__ import annotations

from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class FinestLevelFPN(FPN):
    """mmdet's ``FPN`` whose forward returns only its first (finest) output level.

    Args:
        **kwargs: ``mmdet.models.necks.FPN`` arguments (in_channels, out_channels, num_outs, ...).
            The levels above the first are computed by the top-down pathway and then dropped.
    """

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor]:
        """Args: inputs: backbone feature maps [bs, C_i, H_i, W_i], finest first.

        Returns:
            A 1-tuple: the finest FPN level [bs, out_channels, H_0, W_0].
        """
        return super().forward(inputs)[:1]
