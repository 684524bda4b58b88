"""The classifier's training losses, oversampling and fold-9 thresholds, by value: against hand
computations, sklearn and the papers' formulas (the CLI runs of test_finetune_evaluate only show
that training with them finishes)."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, log_loss

from ecgfast.base.errors import ConfigError
from ecgfast.train.classifier import f1_thresholds, make_loss, oversample

# Six training records, three classes with 4, 1 and 2 positives; record 4 has no label.
TRAIN_LABELS = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0], [1, 0, 1]], dtype=np.float32)


def _batch(seed=0, n=7):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, 3))
    targets = (rng.random((n, 3)) < 0.4).astype(np.float64)
    targets[0] = [1, 1, 1]  # every class has a positive and a negative in the batch
    targets[1] = [0, 0, 0]
    return logits, targets


def _loss(kind, logits, targets):
    fn = make_loss(kind, TRAIN_LABELS)
    return fn(torch.tensor(logits, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)).item()


def _elementwise_bce(logits, targets):
    p = 1.0 / (1.0 + np.exp(-logits))
    return -(targets * np.log(p) + (1 - targets) * np.log1p(-p)), p


def test_bce_is_sklearns_log_loss():
    logits, targets = _batch(1)
    p = 1.0 / (1.0 + np.exp(-logits))
    assert _loss("bce", logits, targets) == pytest.approx(log_loss(targets.ravel(), p.ravel()), rel=1e-6)


def test_weighted_bce_weights_positives_by_negatives_over_positives():
    logits, targets = _batch(2)
    p = 1.0 / (1.0 + np.exp(-logits))
    pos_weight = np.array([2 / 4, 5 / 1, 4 / 2])  # by hand: (6 - n_c) / n_c for n_c = 4, 1, 2
    want = -(pos_weight * targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean()
    assert _loss("weighted", logits, targets) == pytest.approx(want, rel=1e-6)
    assert _loss("weighted", logits, targets) != pytest.approx(_loss("bce", logits, targets), rel=1e-3)


def test_class_balanced_bce_is_cui_et_al_with_beta_0999():
    """Counts 3000, 300 and 30 of 4000: the effective numbers (1 - beta^n) / (1 - beta) are 951,
    259 and 29.6 -- far from the raw counts at 3000, so not inverse-frequency weighting."""
    logits, targets = _batch(3)
    bce, _ = _elementwise_bce(logits, targets)
    counts = (3000, 300, 30)
    train = np.zeros((4000, 3), np.float32)
    for j, n in enumerate(counts):
        train[:n, j] = 1
    beta = 0.999
    w = np.array([(1 - beta) / (1 - beta ** n) for n in counts])  # 1 / effective number of samples
    w = w / w.sum() * 3  # normalised to sum to the number of classes
    assert w == pytest.approx([0.0815, 0.2987, 2.6197], abs=1e-4)  # by hand; 1/n would give 0.027, 0.270, 2.703
    fn = make_loss("class_balanced", train)
    got = fn(torch.tensor(logits, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)).item()
    # float32 in the loss: 1 - beta^30 cancels to ~3e-6 relative
    assert got == pytest.approx((bce * w).mean(), rel=2e-5)


def test_focal_loss_is_lin_et_al_with_gamma_2():
    logits, targets = _batch(4)
    bce, p = _elementwise_bce(logits, targets)
    p_t = np.where(targets == 1, p, 1 - p)
    want = ((1 - p_t) ** 2 * bce).mean()
    assert _loss("focal", logits, targets) == pytest.approx(want, rel=1e-5)
    # a known value: logit 0 gives p_t = 1/2, so (1/2)^2 ln 2 for every element, whatever the target
    zero = np.zeros((2, 3))
    assert _loss("focal", zero, np.array([[1, 0, 1], [0, 1, 0]])) == pytest.approx(0.25 * math.log(2), rel=1e-6)
    # confident and right costs far less than under BCE; confident and wrong about the same
    assert _loss("focal", np.full((1, 3), 4.0), np.ones((1, 3))) < 0.001 * _loss("bce", np.full((1, 3), 4.0),
                                                                                  np.ones((1, 3)))
    assert _loss("focal", np.full((1, 3), -4.0), np.ones((1, 3))) == pytest.approx(
        _loss("bce", np.full((1, 3), -4.0), np.ones((1, 3))), rel=0.05)


def test_unknown_loss_is_refused():
    with pytest.raises(ConfigError, match="--loss 'hinge'"):
        make_loss("hinge", TRAIN_LABELS)


def test_oversampling_draws_each_record_by_its_rarest_class():
    """Weights by hand: a record weighs 1 / (positives of its rarest class); unlabelled records 0.
    Class counts 4, 1, 2 -> weights 1/4, 1, 1/2, 1/4, 0, 1/2 -> probabilities / 2.5. The draw
    frequencies over 60,000 draws match within 5 standard errors."""
    indices = np.array([10, 11, 12, 13, 14, 15])
    want = np.array([0.25, 1.0, 0.5, 0.25, 0.0, 0.5]) / 2.5
    rng = np.random.default_rng(0)
    draws = np.concatenate([oversample(indices, TRAIN_LABELS, rng) for _ in range(10_000)])
    assert draws.shape == (60_000,)
    freq = np.array([(draws == i).mean() for i in indices])
    se = np.sqrt(want * (1 - want) / len(draws))
    assert np.all(np.abs(freq - want) <= 5 * se + 1e-12), (freq, want)
    assert freq[4] == 0  # the unlabelled record is never drawn
    one = oversample(indices, TRAIN_LABELS, np.random.default_rng(1))
    assert len(one) == len(indices) and np.isin(one, indices).all()
    # the rarest class (1 positive of 6 records) makes 40 % of the draws instead of 1/6
    assert (draws == 11).mean() == pytest.approx(0.4, abs=5 * se[1])


def test_f1_thresholds_by_hand():
    # scores 0.1, 0.4, 0.35, 0.8 for labels 0, 0, 1, 1: F1 at t = 0.8 is 2/3, at 0.4 is 1/2,
    # at 0.35 is 0.8 (both positives, one false positive), at 0.1 is 2/3 -> 0.35
    y = np.array([[0], [0], [1], [1]])
    p = np.array([[0.1], [0.4], [0.35], [0.8]])
    assert f1_thresholds(y, p) == [pytest.approx(0.35)]
    # a class without positives, or without negatives, keeps 0.5
    assert f1_thresholds(np.zeros((4, 1)), p) == [0.5] and f1_thresholds(np.ones((4, 1)), p) == [0.5]


def test_f1_thresholds_reach_the_best_f1_sklearn_finds():
    rng = np.random.default_rng(5)
    y = (rng.random((300, 5)) < [0.05, 0.2, 0.4, 0.6, 0.3]).astype(int)
    p = np.clip(0.3 * y + rng.random((300, 5)) * 0.8, 0, 1).round(3)  # ties among the scores too
    for j, t in enumerate(f1_thresholds(y, p)):
        best = max(f1_score(y[:, j], p[:, j] >= s) for s in np.unique(p[:, j]))
        assert f1_score(y[:, j], p[:, j] >= t) == pytest.approx(best, abs=1e-12), j
