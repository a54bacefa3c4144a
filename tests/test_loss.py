"""The loss against independent computations: AP from ranks, dense transcriptions, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paploss import LossParams, ParameterizedAPLoss, PiecewiseLinear, parameterized_ap_loss
from paploss.kernels import BACKENDS
from paploss.localization import localization_scores, scale_gradient


def _step_functions(min_score_gap: float, min_loc: float) -> LossParams:
    """Near-Heaviside functions: score steps jump at x = 0.5 within a band narrower than half the
    smallest score gap; localization steps jump to 1 just above 0."""
    delta = min_score_gap / 4  # x_ij = 0.5 + d / 2, so d > min_gap gives x > 0.5 + 2 delta
    score_step = PiecewiseLinear.from_control_points([0, 0.5, 0.5 + delta, 1], [0, 0, 1, 1])
    loc_step = PiecewiseLinear.from_control_points([0, min_loc / 2, 1], [0, 1, 1])
    return LossParams([loc_step, score_step, loc_step, score_step, loc_step])


def _ap_from_ranks(scores: np.ndarray, is_pos: np.ndarray) -> float:
    """AP = mean over positives of precision at the positive's rank (no ties)."""
    order = np.argsort(-scores, kind="stable")
    hits = is_pos[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def _random_batch(n: int, seed: int, pos_frac: float = 0.2, ignored: int = 3):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, generator=gen, dtype=torch.float64) * 1.5
    labels = (torch.rand(n, generator=gen) < pos_frac).long()
    labels[0] = 1
    labels[torch.randperm(n, generator=gen)[:ignored]] = -1
    labels[1] = 1
    locs = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    return logits, labels, locs


@pytest.mark.parametrize("seed", range(6))
def test_step_functions_give_minus_ap(seed: int) -> None:
    logits, labels, locs = _random_batch(300, seed)
    kept = labels >= 0
    s = logits[kept].numpy()
    gaps = np.diff(np.sort(s))
    params = _step_functions(float(gaps.min()), float(locs.min()))
    loss = parameterized_ap_loss(logits, labels, locs, params, backend="reference")
    ap = _ap_from_ranks(s, labels[kept].numpy() == 1)
    assert loss.item() == pytest.approx(-ap, abs=1e-9)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    assert ap == pytest.approx(
        sklearn_metrics.average_precision_score(labels[kept].numpy() == 1, s), abs=1e-12
    )


def _dense_eq6(logits, labels, locs, params, block: bool = True):
    """Direct transcription of Eq. (6) with dense [N, N] tensors (float64)."""
    f1, f2, f3, f4, f5 = params.functions
    keep = labels >= 0
    s, lab = logits[keep], labels[keep]
    l_all = scale_gradient(locs[keep], params.gradient_scale)
    loc = torch.where(lab == 1, l_all, torch.zeros_like(l_all))
    n = s.numel()
    x = (torch.clamp(s[None, :] - s[:, None], -1, 1) + 1) / 2  # x[i, j]
    off_diag = 1.0 - torch.eye(n, dtype=s.dtype)
    num = (f2(x) * (1 - f3(loc))[None, :] * off_diag).sum(1)
    den = (f4(x) * off_diag).sum(1)
    if block:
        den = den.detach()
    terms = f1(loc) - num / (1 + den) * f5(loc)
    # i over all of B: negatives contribute f(0) = 0
    return -terms.sum() / (lab == 1).sum()


@pytest.mark.parametrize("preset", ["paper-retinanet", "linear", "square", "paper-faster-rcnn-rpn"])
@pytest.mark.parametrize("block", [True, False])
def test_matches_dense_transcription_value_and_gradients(preset: str, block: bool) -> None:
    logits, labels, locs = _random_batch(80, 7)
    params = LossParams.preset(preset).with_gradient_scale(1.7)
    a_logits, a_locs = logits.clone().requires_grad_(), locs.clone().requires_grad_()
    b_logits, b_locs = logits.clone().requires_grad_(), locs.clone().requires_grad_()
    loss = parameterized_ap_loss(
        a_logits, labels, a_locs, params, backend="reference", block_denominator_grad=block
    )
    expected = _dense_eq6(b_logits, labels, b_locs, params, block=block)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12, abs=1e-12)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(a_logits.grad, b_logits.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(a_locs.grad, b_locs.grad, rtol=1e-10, atol=1e-12)
    assert a_logits.grad[labels == -1].abs().max() == 0
    assert a_locs.grad[labels != 1].abs().max() == 0


def test_blocked_denominator_gets_no_gradient_unblocked_does() -> None:
    logits, labels, locs = _random_batch(60, 3)
    params = LossParams.preset("paper-retinanet")
    grads = {}
    for block in (True, False):
        x = logits.clone().requires_grad_()
        parameterized_ap_loss(
            x, labels, locs, params, backend="reference", block_denominator_grad=block
        ).backward()
        grads[block] = x.grad
    # The gradient that flows through the denominator is exactly the difference.
    x = logits.clone().requires_grad_()
    f1, f2, f3, f4, f5 = params.functions
    keep = labels >= 0
    s, lab = x[keep], labels[keep]
    loc = torch.where(lab == 1, locs[keep], torch.zeros_like(locs[keep]))
    n = s.numel()
    xm = (torch.clamp(s[None, :] - s[:, None], -1, 1) + 1) / 2
    off = 1.0 - torch.eye(n, dtype=s.dtype)
    num = (f2(xm) * (1 - f3(loc))[None, :] * off).sum(1).detach()
    den = (f4(xm) * off).sum(1)
    (-(-num / (1 + den) * f5(loc)).sum() / (lab == 1).sum()).backward()
    through_den = x.grad
    assert through_den.abs().max() > 1e-6
    torch.testing.assert_close(grads[False] - grads[True], through_den, rtol=1e-9, atol=1e-12)


def test_gradcheck_float64() -> None:
    logits, labels, locs = _random_batch(14, 11, pos_frac=0.4, ignored=2)
    logits = (logits * 0.3).requires_grad_()  # mostly inside the clamp range
    locs = locs.requires_grad_()
    # lambda = 1: with lambda != 1 the loc-score gradient is, by design, lambda times the derivative.
    params = LossParams.preset("paper-retinanet").with_gradient_scale(1.0)
    # With the denominator's gradient blocked the analytic gradient is, by design, not the
    # derivative of the value; gradcheck the unblocked loss (the blocked one is checked against
    # the dense transcription above).
    for release in (False, True):
        assert torch.autograd.gradcheck(
            lambda s, loc, release=release: parameterized_ap_loss(
                s,
                labels,
                loc,
                params,
                backend="reference",
                release_compatible=release,
                block_denominator_grad=False,
            ),
            (logits, locs),
            eps=1e-7,
            atol=1e-6,
        )


def test_gradient_scale_multiplies_localization_gradient_exactly() -> None:
    logits, labels, locs = _random_batch(50, 5)
    base = LossParams.preset("paper-retinanet")
    results = {}
    for lam in (1.0, 3.5):
        s = logits.clone().requires_grad_()
        loc = locs.clone().requires_grad_()
        loss = parameterized_ap_loss(s, labels, loc, base.with_gradient_scale(lam))
        loss.backward()
        results[lam] = (loss.item(), s.grad, loc.grad)
    assert results[1.0][0] == results[3.5][0]
    assert torch.equal(results[1.0][1], results[3.5][1])
    torch.testing.assert_close(results[3.5][2], 3.5 * results[1.0][2], rtol=1e-14, atol=0)
    assert results[1.0][2].abs().max() > 0


def _dense_release(logits, labels, locs, params, topk=None):
    """The released formulation, written out densely: j over kept entries INCLUDING i; with topk,
    j over the topk highest kept logits only (a positive outside them is no j)."""
    f1, f2, f3, f4, f5 = params.functions
    keep = labels >= 0
    s, lab = logits[keep], labels[keep]
    loc = torch.where(lab == 1, locs[keep], torch.zeros_like(locs[keep]))
    cols = torch.ones_like(s, dtype=torch.bool)
    if topk is not None and topk < s.numel():
        cols = torch.zeros_like(cols)
        cols[torch.argsort(s, descending=True)[:topk]] = True
    pos = (lab == 1).nonzero().flatten()
    total = 0.0
    for i in pos.tolist():
        x = (torch.clamp(s[cols] - s[i], -1, 1) + 1) / 2
        num = (f2(x) * (1 - f3(loc[cols]))).sum()
        den = f4(x).sum().detach()
        total = total + (1 - f1(loc[i : i + 1])) + num * f5(loc[i : i + 1]) / den
    return total.sum() / pos.numel()


@pytest.mark.parametrize("topk", [None, 25, 1000])
def test_release_compatible_matches_dense_release_formula(topk: int | None) -> None:
    logits, labels, locs = _random_batch(90, 13)
    if topk == 25:  # the case that tells the release's selection from "top-k plus positives"
        kept = labels >= 0
        threshold = logits[kept].sort(descending=True).values[topk - 1]
        assert ((labels == 1) & (logits < threshold)).any()
    params = LossParams.preset("paper-retinanet")
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    loss = parameterized_ap_loss(
        a, labels, locs, params, release_compatible=True, topk=topk, backend="reference"
    )
    expected = _dense_release(b, labels, locs, params, topk)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def _release_transcription(logits, labels, ious, params, num_topk):
    """The authors' released loss (fundamentalvision/Parameterized-AP-Loss,
    mmdet/models/losses/paploss.py, loss_form='searched'), transcribed: the top-k logits among
    ALL non-ignored entries are the j set, every positive is an i. Its control points map to
    Eq. (6) as H2 = f2, I2 = f3, I3 = f5, I1 = f1, H1 = f4 (detached)."""
    f1, f2, f3, f4, f5 = params.functions
    pos_idx = labels == 1
    pos_logits, pos_ious = logits[pos_idx], ious[pos_idx]
    valid_idx = labels != -1
    all_logits = logits[valid_idx]
    all_ious = torch.where(labels[valid_idx] == 1, ious[valid_idx], 0.0)  # l = 0 for negatives
    if all_logits.shape[0] > num_topk:
        select_logits, topk_idx = torch.topk(all_logits, num_topk)
        select_ious = all_ious[topk_idx]
    else:
        select_logits, select_ious = all_logits, all_ious
    diff = select_logits[:, None] - pos_logits[None, :]  # [selected, positives]
    norm_diff = torch.clamp(diff / 2 + 0.5, min=0, max=1)
    h1 = f4(norm_diff).detach()
    h2 = f2(norm_diff)
    i2 = f3(select_ious)[:, None]
    i3 = f5(pos_ious)[None, :]
    i1 = f1(pos_ious)
    loss = (1 - i1) + (h2 * (1 - i2) * i3).sum(0) / h1.sum(0)
    return loss.sum() / pos_logits.numel()


@pytest.mark.parametrize("backend", ["reference", "sorted"])
def test_release_compatible_topk_selects_among_all_entries(backend: str) -> None:
    """topk=50 of 300 entries: positives below the 50th logit are no j (the release's top-k)."""
    logits, labels, locs = _random_batch(300, 17, pos_frac=0.3)
    params = LossParams.preset("paper-retinanet").with_gradient_scale(1.0)
    threshold = logits[labels >= 0].sort(descending=True).values[49]
    assert ((labels == 1) & (logits < threshold)).sum() > 10  # positives outside the top-k
    a_s, a_l = logits.clone().requires_grad_(), locs.clone().requires_grad_()
    b_s, b_l = logits.clone().requires_grad_(), locs.clone().requires_grad_()
    loss = parameterized_ap_loss(
        a_s, labels, a_l, params, release_compatible=True, topk=50, backend=backend
    )
    expected = _release_transcription(b_s, labels, b_l, params, 50)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(a_s.grad, b_s.grad, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(a_l.grad, b_l.grad, rtol=1e-8, atol=1e-12)
    # "top-k plus every positive" gives another number here (the test tells the two apart)
    kept = labels >= 0
    top50 = torch.argsort(torch.where(kept, logits, -torch.inf), descending=True)[:50]
    plus_positives = labels == 1
    plus_positives[top50] = True
    other = _dense_release(
        logits[plus_positives], labels[plus_positives], locs[plus_positives], params
    )
    assert abs(other.item() - expected.item()) > 0.01 * abs(expected.item())


def test_default_topk_keeps_every_positive() -> None:
    """Without release_compatible, topk keeps the top-k plus every positive (Eq. (6) over them)."""
    logits, labels, locs = _random_batch(120, 19, pos_frac=0.3)
    params = LossParams.preset("paper-retinanet")
    kept = labels >= 0
    cols = torch.zeros_like(kept)
    cols[torch.argsort(torch.where(kept, logits, -torch.inf), descending=True)[:30]] = True
    cols |= labels == 1
    expected = _dense_eq6(logits[cols], labels[cols], locs[cols], params)
    loss = parameterized_ap_loss(logits, labels, locs, params, topk=30, backend="reference")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("backend", ["reference", "sorted"])
@pytest.mark.parametrize("release", [False, True])
def test_non_finite_values_on_ignored_entries_take_no_part(backend: str, release: bool) -> None:
    logits, labels, locs = _random_batch(60, 23)
    ignored = (labels == -1).nonzero().flatten()
    assert ignored.numel() == 3
    params = LossParams.preset("paper-retinanet").with_gradient_scale(2.0)
    bad_logits, bad_locs = logits.clone(), locs.clone()
    bad_logits[ignored] = torch.tensor([float("nan"), float("inf"), -float("inf")]).double()
    bad_locs[ignored] = torch.tensor([float("nan"), 7.0, -3.0]).double()
    s, loc = bad_logits.requires_grad_(), bad_locs.requires_grad_()
    loss = parameterized_ap_loss(
        s, labels, loc, params, backend=backend, release_compatible=release
    )
    # the independent computations see only the kept entries
    kept = labels >= 0
    if release:
        expected = _dense_release(logits[kept], labels[kept], locs[kept], params)
    else:
        expected = _dense_eq6(logits[kept], labels[kept], locs[kept], params)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    loss.backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(loc.grad).all()
    assert s.grad[ignored].abs().max() == 0 and loc.grad[ignored].abs().max() == 0
    # no positives among the kept entries: a connected zero, not NaN
    negatives = torch.where(labels == 1, 0, labels)
    s2, loc2 = bad_logits.detach().requires_grad_(), bad_locs.detach().requires_grad_()
    zero = parameterized_ap_loss(s2, negatives, loc2, params, backend=backend)
    assert zero.item() == 0.0 and zero.requires_grad
    zero.backward()
    assert torch.isfinite(s2.grad).all() and s2.grad.abs().max() == 0


def test_no_positives_gives_connected_zero() -> None:
    logits = torch.randn(10, requires_grad=True)
    locs = torch.rand(10, requires_grad=True)
    labels = torch.zeros(10, dtype=torch.long)
    loss = parameterized_ap_loss(logits, labels, locs, LossParams.preset("linear"))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().max() == 0


def test_module_and_dtypes() -> None:
    logits, labels, locs = _random_batch(40, 2)
    module = ParameterizedAPLoss({"preset": "paper-retinanet"}, backend="reference")
    expected = parameterized_ap_loss(logits, labels, locs, LossParams.preset("paper-retinanet"))
    assert module(logits, labels, locs).item() == pytest.approx(expected.item())
    loss32 = module(logits.float(), labels.int(), locs.float())
    assert loss32.dtype == torch.float32
    assert loss32.item() == pytest.approx(expected.item(), rel=1e-5)
    # any shape: [images, anchors, classes]
    loss3d = module(logits.view(2, 4, 5), labels.view(2, 4, 5), locs.view(2, 4, 5))
    assert loss3d.item() == pytest.approx(expected.item())
    assert "lambda=4.123" in repr(module)


def test_bad_inputs_raise_value_error_with_the_value() -> None:
    params = LossParams.preset("linear")
    s, lab, loc = torch.randn(5), torch.tensor([1, 0, 0, -1, 0]), torch.rand(5)
    with pytest.raises(ValueError, match="same shape"):
        parameterized_ap_loss(s, lab[:4], loc, params)
    with pytest.raises(ValueError, match=r"labels must be 1.*\[2\]"):
        parameterized_ap_loss(s, torch.tensor([1, 0, 2, 0, 0]), loc, params)
    with pytest.raises(ValueError, match=r"loc_scores must lie in \[0, 1\].*1.5"):
        parameterized_ap_loss(s, lab, torch.tensor([0.1, 0.2, 1.5, 0.3, 0.4]), params)
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        parameterized_ap_loss(s, lab.float(), loc, params)
    with pytest.raises(ValueError, match="logits must be a floating-point"):
        parameterized_ap_loss(lab, lab, loc, params)
    with pytest.raises(ValueError, match=r"logits has 2 non-finite value\(s\).*\[1, 3\]"):
        # index 3 is a negative here: non-finite values on ignored entries are no error
        parameterized_ap_loss(
            torch.tensor([0.0, float("nan"), 1.0, float("inf"), 2.0]),
            torch.tensor([1, 0, 0, 0, 0]),
            loc,
            params,
        )
    with pytest.raises(ValueError, match="loc_scores has 1 non-finite"):
        parameterized_ap_loss(s, lab, torch.tensor([0.1, float("nan"), 0.2, 0.3, 0.4]), params)
    with pytest.raises(ValueError, match="topk must be None or a positive int"):
        parameterized_ap_loss(s, lab, loc, params, topk=0)
    with pytest.raises(ValueError, match="unknown backend"):
        parameterized_ap_loss(s, lab, loc, params, backend="cuda-magic")
    # the check can be turned off
    out = parameterized_ap_loss(
        torch.tensor([0.0, float("nan"), 1.0, 0.5, 2.0]), lab, loc, params, check_finite=False
    )
    assert out.shape == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_gives_the_same_loss_and_gradients(backend: str) -> None:
    # Triton runs on CUDA tensors, or on CPU tensors under TRITON_INTERPRET=1 (tests/conftest.py).
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    logits, labels, locs = _random_batch(70, 21)
    logits, labels, locs = logits.to(device), labels.to(device), locs.to(device)
    params = LossParams.preset("paper-retinanet").with_gradient_scale(2.0)
    out = {}
    for name in ("reference", backend):
        s = logits.float().clone().requires_grad_()
        loc = locs.float().clone().requires_grad_()
        loss = parameterized_ap_loss(s, labels, loc, params, backend=name)
        loss.backward()
        out[name] = (loss, s.grad, loc.grad)
    torch.testing.assert_close(out[backend][0], out["reference"][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out[backend][1], out["reference"][1], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out[backend][2], out["reference"][2], rtol=1e-4, atol=1e-6)


def test_localization_scores_against_hand_computed_boxes() -> None:
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]])
    # box 0: inter 1, union 7, hull 9 -> IoU 1/7, GIoU 1/7 - 2/9
    iou = localization_scores(pred, gt, "iou")
    giou = localization_scores(pred, gt, "giou")
    l1 = localization_scores(pred, gt, "l1")
    torch.testing.assert_close(iou, torch.tensor([1 / 7, 1.0, 0.0]))
    g0 = 1 / 7 - 2 / 9
    g2 = 0.0 - (3 - 2) / 3
    torch.testing.assert_close(giou, torch.tensor([(g0 + 1) / 2, 1.0, (g2 + 1) / 2]))
    # box 0: |d| = 1 each, divided by gt w=h=2 -> mean 0.5 -> 1/1.5; box 2: |d| = (2,0,2,0)/1 -> 1
    torch.testing.assert_close(l1, torch.tensor([1 / 1.5, 1.0, 0.5]))
    with pytest.raises(ValueError, match="unknown localization score"):
        localization_scores(pred, gt, "diou")
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        localization_scores(pred[:, :3], gt[:, :3])
