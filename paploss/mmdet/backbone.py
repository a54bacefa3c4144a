"""``ProxyResNet``: mmdet's ResNet started from the proxy's cached digit pretraining.

``pretrain=dict(...)`` holds ``paploss.proxy.backbone.PretrainSettings`` fields; ``init_weights``
builds the cached weights on first use (``ensure_pretrained``) and loads them, so a config names
*what* was pretrained, not a file, and a changed setting gives another cache entry. Every trial of
a search therefore starts from the same backbone weights (the w0 of the paper's Algorithm 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS

from paploss.proxy.backbone import PretrainSettings, ensure_pretrained, load_record, settings_for


@MODELS.register_module()
class ProxyResNet(ResNet):
    """ResNet whose weights come from the proxy's digit pretraining.

    Args:
        pretrain: ``PretrainSettings`` fields (``depth`` and ``base_channels`` are taken from this
            backbone's own arguments); None trains from scratch like ``ResNet``.
        **kwargs: ``mmdet.models.backbones.ResNet`` arguments.
    """

    def __init__(self, *, pretrain: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pretrain_settings: PretrainSettings | None = None
        if pretrain is not None:
            self.pretrain_settings = settings_for(
                pretrain, depth=self.depth, base_channels=self.base_channels
            )

    def init_weights(self) -> None:
        super().init_weights()
        if self.pretrain_settings is None:
            return
        record = load_record(ensure_pretrained(self.pretrain_settings))
        # A backbone with fewer stages (num_stages < 4, e.g. the DETR proxy's C3) takes the
        # weights of its own stages; every one of its parameters must be covered.
        unused = tuple(f"layer{k}." for k in range(self.num_stages + 1, 5))
        state = {k: v for k, v in record["state_dict"].items() if not k.startswith(unused)}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"ProxyResNet: pretrained weights do not fit (missing {missing}, "
                f"unexpected {unexpected})"
            )
