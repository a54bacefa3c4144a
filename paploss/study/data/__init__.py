"""The detection data of a run: COCO json checks, reading and the seeded D_train / D_eval split
(``coco``); the ``--data`` forms, the search and training data, the split writer and the writable
outputs (``sources``). Imports no other part of the study layer but its ground floor."""
