"""The orderings the paper states about its tables (:data:`CLAIMS`), and the rows they name."""

from __future__ import annotations

from paploss.reproduce.paper_tables import PROTOCOL_KEY, TABLES

CLAIMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "tab1": (
        # against the baselines tuned with the main search's budget (paper_detectors.baseline_rows)
        ("Parameterized AP Loss", ">", "Focal Loss + L1 (tuned)"),
        ("Parameterized AP Loss", ">", "Focal Loss + GIoU (tuned)"),
        ("Parameterized AP Loss", ">", "Focal Loss + L1 + GIoU (tuned)"),
        ("Parameterized AP Loss", ">", "Cross Entropy + L1 (tuned)"),
        ("Parameterized AP Loss", ">", "Cross Entropy + GIoU (tuned)"),
    ),
    "tab2": (
        ("Sigmoid", "<<", "Linear"),
        ("Sqrt", "<<", "Linear"),
        ("Searched", ">=", "Sigmoid"),
        ("Searched", ">=", "Sqrt"),
        ("Searched", ">=", "Linear"),
        ("Searched", ">=", "Square"),
    ),
    "tab3": (("Separate", ">", "Shared"),),
    "tab4": (("w/", ">", "w/o"),),
    "tab5": (("GIoU", ">", "IoU"), ("L1", ">", "IoU")),
    "tab6": (("5", ">", "3"),),
    "tab7": (("blocked", ">", "not blocked"),),
    "tab8": (
        ("Parameterized AP Loss searched on the digits proxy", ">", "Focal Loss + L1"),
        ("Parameterized AP Loss searched on the clutter proxy", ">", "Focal Loss + L1"),
        (
            "Parameterized AP Loss searched on the clutter proxy",
            ">",
            "Parameterized AP Loss searched on the digits proxy",
        ),
    ),
    PROTOCOL_KEY: (
        # The question of the protocol: does the longer search beat what came before it?
        ("Searched, 40 x 8", ">", "Published RetinaNet params"),
        ("Searched, 40 x 8", ">", "Searched, main search"),
        ("Searched, 40 x 8", ">", "Linear"),
    ),
    "tab9": (
        # "Even without searched gradient scale and separate parameterization, [it] can still
        # outperform handcrafted substitutions" (Square is the best of them).
        ("Searched shared, lambda 1", ">", "Square, lambda 1"),
        # "Separate parameterization can bring more than 2.0 AP gain".
        ("Searched separate, lambda 1", ">", "Searched shared, lambda 1"),
        ("Searched separate, lambda searched", ">", "Searched shared, lambda searched"),
        # "Gradient scale can further boost the performance by around 1.0 AP".
        ("Searched shared, lambda searched", ">", "Searched shared, lambda 1"),
        ("Searched separate, lambda searched", ">", "Searched separate, lambda 1"),
    ),
}
"""The orderings the paper states (for the protocol: the ones its run is for), checked per table
(Tab. 1 and 7: per detector group) by a paired one-sided test (:mod:`paploss.reproduce.report_stats`). "<<" reads "far below": by more than 5 AP
points; ">=" is tested as ">"."""


def claim_training_keys() -> frozenset[str]:
    """Keys of the trainings of every row named in a stated ordering (:data:`CLAIMS`; in Tab. 1
    the rows of the detector groups that have both rows): they train ``Budget.claim_seeds``."""
    found: set[str] = set()
    for key, claims in CLAIMS.items():
        rows = TABLES[key].rows
        for group in {r.group for r in rows}:
            labels = {r.label: r.training.key for r in rows if r.group == group}
            for left, _, right in claims:
                if left in labels and right in labels:
                    found |= {labels[left], labels[right]}
    return frozenset(found)
