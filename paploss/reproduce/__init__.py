"""The reproduction of the paper's ablations (``paploss-reproduce``, ``python -m
paploss.reproduce``): a client of the study layer that runs its search and train commands as child
processes and reports on the studies they leave. Nothing in :mod:`paploss.study` imports it.

Modules (the imports point down this list):

- ``experiments``: the types (searches, trainings, rows, tables) and the budgets;
- ``paper_tables``: the paper's tables as data (its numbers, the proxy's training of every row);
  ``paper_claims``: the orderings the paper states;
- ``plan``: the jobs of the chosen experiments; ``children``: their child commands (built, shown
  as a user types them, a seed's recorded result); ``pool``: the slots the children run in;
  ``runner``: runs the plan; ``lock``: one reproduction per storage; ``command``: the command
  line;
- the report: ``snapshot`` (the storage read once into a typed snapshot), ``report_stats`` (the
  paired tests of the stated orderings), ``report_tables``, ``report_figures`` (Fig. 3, Fig. 4),
  ``report_protocol`` (the section of the paper's 40 x 8 search protocol), ``report_paths`` (paths
  as the user would type them) and ``report`` (writes the Markdown).

Importing this package imports neither mmdet nor optuna-dashboard.
"""
