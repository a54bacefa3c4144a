"""A run's MMDetection config: the search space (``space``), the config's loss heads and their
parameters (``loss_slots``), the ``--cfg-options`` a config takes (``cfg_options``), the rule that
ends a collapsed search trial early (``early_stop``), and loading, digest and preparation of the
config (``mmcfg``). Imports ``data`` below it, nothing of ``runner`` or ``search`` above."""
