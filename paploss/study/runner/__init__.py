"""One training run in a child process: the result contract and the parent side (``trial``), the
``--device`` check (``devices``), a training as N ranks of torch.distributed (``distributed``), the
child that trains (``child``) and the pre-imported process that forks every training and its ranks
(``warm``). Imports ``config`` and ``data`` below it, nothing of ``search``."""
