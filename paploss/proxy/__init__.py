"""The bundled proxy task: detection scenes composed from scikit-learn's handwritten digits.

The search of paper Sec. 3.3 trains a detector for one epoch on D_train and evaluates AP on D_eval
for every sampled parameter set. On COCO that takes GPU-days; this package builds a small detection
dataset that needs no download and runs on CPUs, with the same structure:

- Source: ``sklearn.datasets.load_digits`` (1,797 grey 8x8 images of the digits 0-9, shipped with
  scikit-learn). Category ids 1..10, names ``'0'`` .. ``'9'``.
- Splits: the 1,797 source digits are partitioned per class (deterministically by ``seed``) into
  three disjoint groups, 60 % / 20 % / 20 % by default; ``train`` (D_train of the search), ``eval``
  (D_eval, the search's reward) and ``val`` (final numbers) compose their scenes only from their
  own group, so no source digit is seen in two splits.
- Scenes: ``image_size`` x ``image_size`` grey PNGs (default 64) with a random background level, a
  linear gradient, Gaussian noise and a few faint line distractors; 1-4 digits each by default
  (uniform), alpha-composited as bright ink of random intensity, with limited overlap.
- Object sizes: an object's annotated box is the tight box of the digit's ink. Its size
  sqrt(w * h) is drawn log-uniformly inside one of three classes chosen with probabilities
  ``size_mix``; the class limits are COCO's area thresholds (32^2 and 96^2 px on images of about
  640 px) scaled to the image size, i.e. multiplied by ``image_size / 640``: at 128 px
  "small" is sqrt(area) in [4.5, 6.4), "medium" [6.4, 19.2), "large" [19.2, 56]. The default is
  the large class only (``size_mix`` (0, 0, 1)) at 64 px: sqrt(area) in [9.6, 28] px, sizes at
  which an 8 x 8 source digit stays recognizable (at 4.5-6.4 px it hardly is). Note that mmdet's
  CocoMetric (pycocotools) applies COCO's *absolute* area thresholds to AP_S/AP_M/AP_L; on
  64 px images it therefore counts every proxy object as "small" (AP_M and AP_L are -1). The
  relative class of each object is stored in its annotation (``size_class``) for own analyses.
- Format: COCO detection json (``images``, ``annotations`` with ``bbox`` = [x, y, w, h] in
  pixels, ``area`` = w * h, ``iscrowd`` = 0, ``categories``) plus PNG files; every annotation also
  records ``source_index`` (the row of ``load_digits``) and ``size_class``.

Everything is a deterministic function of the settings: the split partition, and every image from
``(seed, split, image index)`` alone, so e.g. D_eval does not change when ``num_train`` does.

Layout (``generate_proxy_dataset`` returns ``{split: <root>/<split>}``)::

    <root>/settings.json               written last: marks a complete dataset
    <root>/<split>/annotations.json    COCO json, split in ("train", "eval", "val")
    <root>/<split>/images/000001.png

Modules: :mod:`~paploss.proxy.settings` (``ProxySettings``, file names),
:mod:`~paploss.proxy.scenes` (scene synthesis), :mod:`~paploss.proxy.coco_writer` (one split's PNGs and COCO json),
:mod:`~paploss.proxy.dataset` (the locked cache with its damage checks, ``generate_proxy_dataset``),
:mod:`~paploss.proxy.cli` (``python -m paploss.proxy --out DIR``; ``--check``: only report the
state) and :mod:`~paploss.proxy.backbone` (the digit-pretrained backbone,
``python -m paploss.proxy.backbone``; its pretraining needs torch and mmdet).
"""

from paploss.proxy.dataset import (
    dataset_problem,
    default_cache_dir,
    default_root,
    generate_proxy_dataset,
    load_settings,
    split_paths,
)
from paploss.proxy.settings import CLASSES, SPLITS, ProxySettings

__all__ = [
    "CLASSES",
    "SPLITS",
    "ProxySettings",
    "dataset_problem",
    "default_cache_dir",
    "default_root",
    "generate_proxy_dataset",
    "load_settings",
    "split_paths",
]
