"""The search command (``python -m paploss.study.search``, ``paploss-search``): a worker's typed
set-up (``setup``), one search trial (``objective``), a worker's callbacks, lines, plot and summary
(``progress``), dashboard notes, plots and progress lines (``records``) and the command itself
(``command``). The top floor of the study layer beside ``train`` and ``split``."""
