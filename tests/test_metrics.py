import numpy as np
import pytest

from hpbench import metrics


def test_errors_and_means_by_hand():
    gt = np.zeros((2, 2, 3))
    pred = np.array([[[3, 4, 0], [0, 0, 1]], [[0, 0, 0], [6, 8, 0]]], dtype=float)
    errors = metrics.joint_errors_mm(pred, gt)
    np.testing.assert_allclose(errors, [[5, 1], [0, 10]])
    assert metrics.mean_error_mm(errors) == pytest.approx(4.0)
    np.testing.assert_allclose(metrics.per_joint_error_mm(errors), [2.5, 5.5])
    mask = np.array([[True, False], [True, True]])
    assert metrics.mean_error_mm(errors, mask) == pytest.approx(5.0)
    np.testing.assert_allclose(metrics.per_joint_error_mm(errors, mask), [2.5, 10.0])


def test_success_rate_max_mean_and_per_joint():
    errors = np.array([[5.0, 1.0], [0.0, 10.0], [30.0, 30.0]])
    t = np.array([0.0, 5.0, 10.0, 30.0])
    np.testing.assert_allclose(metrics.success_rate(errors, t), [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(metrics.success_rate(errors, t, criterion="mean"), [0, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(metrics.per_joint_success_rate(errors, t), [[1 / 3, 2 / 3, 2 / 3, 1], [0, 1 / 3, 2 / 3, 1]])
    # a masked-out joint does not count against its frame
    mask = np.array([[True, True], [True, False], [True, True]])
    np.testing.assert_allclose(metrics.success_rate(errors, t, mask=mask), [1 / 3, 2 / 3, 2 / 3, 1])
    with pytest.raises(ValueError, match="criterion"):
        metrics.success_rate(errors, t, criterion="median")


def test_auc_of_simple_curves():
    t = np.arange(0.0, 81.0)
    assert metrics.auc(t, np.ones_like(t)) == pytest.approx(1.0)
    assert metrics.auc(t, t / 80) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.auc(t[:1], t[:1])


def test_inputs_are_not_modified_and_shapes_checked():
    pred = np.ones((3, 4, 3))
    before = pred.copy()
    metrics.joint_errors_mm(pred, np.zeros_like(pred))
    np.testing.assert_array_equal(pred, before)
    with pytest.raises(ValueError):
        metrics.joint_errors_mm(pred, np.zeros((3, 5, 3)))
    with pytest.raises(ValueError, match="mask"):
        metrics.mean_error_mm(np.ones((2, 2)), np.ones((2, 2)))


# --------------------------------------------------------------------------------------------------
# Hand-computed values (issue 17): every expected number below is worked out by hand from the
# conventions of design/README.md, not by the code under test. Arrays are deliberately non-square
# (N != J != 3) so that a reduction over the wrong axis cannot pass by accident.

# 3 frames x 2 joints; non-zero ground truth, so pred - gt and pred + gt differ
_GT = [
    [[10.0, 20.0, 300.0], [-5.0, 7.0, 410.0]],
    [[1.0, 1.0, 1.0], [100.0, -100.0, 500.0]],
    [[0.0, 0.0, 250.0], [50.0, 50.0, 50.0]],
]
_PRED = [
    [[13.0, 24.0, 300.0], [-5.0, 7.0, 412.0]],  # errors 5 (3-4-5), 2
    [[1.0, 1.0, 1.0], [106.0, -108.0, 500.0]],  # errors 0, 10 (6-8-10)
    [[0.0, 12.0, 259.0], [50.0, 50.0, 80.0]],  # errors 15 (0-12-9), 30
]
_ERRORS = [[5.0, 2.0], [0.0, 10.0], [15.0, 30.0]]


def test_errors_with_non_zero_ground_truth_from_lists():
    errors = metrics.joint_errors_mm(_PRED, _GT)  # nested lists are accepted
    np.testing.assert_allclose(errors, _ERRORS)
    np.testing.assert_allclose(metrics.joint_errors_mm(_GT, _PRED), _ERRORS)  # symmetric
    assert errors.shape == (3, 2)


@pytest.mark.parametrize(
    ("pred_shape", "gt_shape"),
    [((3, 2, 3), (3, 3, 3)), ((3, 3), (3, 3)), ((3, 2, 2), (3, 2, 2)), ((3, 2, 4), (3, 2, 4))],
)
def test_error_shapes_each_condition_alone(pred_shape, gt_shape):
    with pytest.raises(ValueError, match=r"\(N, J, 3\)"):
        metrics.joint_errors_mm(np.zeros(pred_shape), np.zeros(gt_shape))


def test_joint_errors_of_one_joint_and_of_many_joints():
    # J = 1 and J = 4, N = 1 and N = 2: the last axis (x, y, z) is the one reduced
    assert metrics.joint_errors_mm([[[1.0, 2.0, 2.0]]], [[[0.0, 0.0, 0.0]]]).tolist() == [[3.0]]
    pred = np.zeros((2, 4, 3))
    pred[1, 3] = [2.0, 3.0, 6.0]  # 7
    np.testing.assert_allclose(metrics.joint_errors_mm(pred, np.zeros((2, 4, 3))), [[0, 0, 0, 0], [0, 0, 0, 7]])


def test_means_with_masks_by_hand():
    errors = [list(row) for row in _ERRORS]  # a list, not an array
    assert metrics.mean_error_mm(errors) == pytest.approx(62.0 / 6)
    mask = [[True, False], [True, True], [False, True]]  # a list of bools is a mask too
    assert metrics.mean_error_mm(errors, mask) == pytest.approx((5 + 0 + 10 + 30) / 4)
    np.testing.assert_allclose(metrics.per_joint_error_mm(errors), [20 / 3, 14.0])
    np.testing.assert_allclose(metrics.per_joint_error_mm(errors, mask), [2.5, 20.0])
    one = np.array([[True, False], [False, False], [False, True]])  # each joint counted exactly once
    np.testing.assert_allclose(metrics.per_joint_error_mm(errors, one), [5.0, 30.0])


@pytest.mark.filterwarnings("error")
def test_a_joint_never_counted_is_nan_without_warnings():
    errors = np.array(_ERRORS)
    mask = np.array([[True, False], [True, False], [True, False]])
    result = metrics.per_joint_error_mm(errors, mask)
    assert result[0] == pytest.approx(20 / 3) and np.isnan(result[1])
    rates = metrics.per_joint_success_rate(errors, [5.0, 20.0], mask)
    np.testing.assert_allclose(rates[0], [2 / 3, 1.0])
    assert np.isnan(rates[1]).all()


@pytest.mark.parametrize("function", [metrics.mean_error_mm, metrics.per_joint_error_mm,
                                      metrics.success_rate, metrics.per_joint_success_rate])
@pytest.mark.parametrize("mask", [np.ones((3, 2), dtype=int), np.ones((2, 3), dtype=bool), np.ones((3, 3), dtype=bool)])
def test_every_function_checks_its_mask(function, mask):
    with pytest.raises(ValueError, match="mask must be a boolean array of shape"):
        function(np.array(_ERRORS), mask=mask)


def test_empty_masks_are_refused():
    errors = np.array(_ERRORS)
    with pytest.raises(ValueError, match="no joints to average"):
        metrics.mean_error_mm(errors, np.zeros((3, 2), dtype=bool))
    for criterion in ("max", "mean"):
        with pytest.raises(ValueError, match="no frames to count"):
            metrics.success_rate(errors, criterion=criterion, mask=np.zeros((3, 2), dtype=bool))


def test_default_thresholds_are_0_to_80_mm():
    np.testing.assert_array_equal(metrics.THRESHOLDS_MM, [float(t) for t in range(81)])
    rates = metrics.success_rate(np.array(_ERRORS))  # frame maxima 5, 10, 30
    assert rates.shape == (81,)
    assert rates[4] == 0 and rates[5] == pytest.approx(1 / 3) and rates[9] == pytest.approx(1 / 3)
    assert rates[10] == pytest.approx(2 / 3) and rates[29] == pytest.approx(2 / 3) and rates[30] == 1 and rates[80] == 1
    per_joint = metrics.per_joint_success_rate(np.array(_ERRORS))
    assert per_joint.shape == (2, 81)
    assert per_joint[1, 9] == pytest.approx(1 / 3) and per_joint[1, 10] == pytest.approx(2 / 3)


@pytest.mark.filterwarnings("error")
def test_success_rates_with_masks_and_a_non_zero_threshold_start():
    errors = [list(row) for row in _ERRORS] + [[70.0, 1.0]]  # 4 frames x 2 joints
    t = [2.5, 5.0, 12.5, 30.0]  # a list of thresholds starting above 0
    # max per frame: 5, 10, 30, 70 -> <= 2.5: 0; <= 5: 1; <= 12.5: 2; <= 30: 3 (of 4)
    np.testing.assert_allclose(metrics.success_rate(errors, t), [0, 1 / 4, 2 / 4, 3 / 4])
    t3 = [2.5, 12.5, 30.0]  # T = 3 != N = 4
    np.testing.assert_allclose(metrics.success_rate(errors, t3), [0, 2 / 4, 3 / 4])
    # mean per frame: 3.5, 5, 22.5, 35.5
    np.testing.assert_allclose(metrics.success_rate(errors, t3, criterion="mean"), [0, 2 / 4, 3 / 4])
    # mask: frame 0 counts joint 0 only (5), frame 1 none (left out), frame 2 joint 1 (30), frame 3 both (70 / 35.5)
    mask = [[True, False], [False, False], [False, True], [True, True]]
    np.testing.assert_allclose(metrics.success_rate(errors, t3, mask=mask), [0, 1 / 3, 2 / 3])
    np.testing.assert_allclose(metrics.success_rate(errors, t3, criterion="mean", mask=mask), [0, 1 / 3, 2 / 3])
    one = [[False, False], [False, True], [False, False], [False, False]]  # a single counted frame (10)
    np.testing.assert_allclose(metrics.success_rate(errors, t3, mask=one), [0, 1, 1])
    np.testing.assert_allclose(metrics.success_rate(errors, t3, criterion="mean", mask=one), [0, 1, 1])
    # per joint, over counted frames: joint 0 errors 5, 70 (frames 0, 3); joint 1 errors 30, 1 (frames 2, 3)
    np.testing.assert_allclose(metrics.per_joint_success_rate(errors, t3, mask),
                               [[0, 1 / 2, 1 / 2], [1 / 2, 1 / 2, 1]])
    # unmasked: joint 0 errors 5, 0, 15, 70; joint 1 errors 2, 10, 30, 1
    np.testing.assert_allclose(metrics.per_joint_success_rate(errors, t3), [[1 / 4, 2 / 4, 3 / 4], [2 / 4, 3 / 4, 1]])


def test_success_is_inclusive_at_the_threshold():
    errors = np.array([[4.0, 7.0], [7.0, 7.0]])
    np.testing.assert_allclose(metrics.success_rate(errors, [6.999, 7.0]), [0, 1])
    np.testing.assert_allclose(metrics.per_joint_success_rate(errors, [6.999, 7.0]), [[1 / 2, 1], [0, 1]])


def test_auc_by_hand_with_a_non_zero_start():
    # trapezoids over [10, 20, 30]: 10 * (0 + 0.5) / 2 + 10 * (0.5 + 1) / 2 = 10, over a span of 20
    assert metrics.auc([10.0, 20.0, 30.0], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    # uneven steps: [5, 6, 15]: 1 * (0.2 + 0.4) / 2 + 9 * (0.4 + 1) / 2 = 0.3 + 6.3 = 6.6, span 10
    assert metrics.auc(np.array([5.0, 6.0, 15.0]), np.array([0.2, 0.4, 1.0])) == pytest.approx(0.66)
    assert metrics.auc([40.0, 80.0], [1.0, 1.0]) == pytest.approx(1.0)  # length 2 is enough


@pytest.mark.parametrize(
    ("thresholds", "rates", "message"),
    [
        ([5.0], [1.0], "length >= 2"),
        ([[0.0, 1.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]], "1-D"),
        ([0.0, 40.0, 80.0], [[1.0, 1.0, 1.0]], "1-D"),
        ([0.0, 40.0, 80.0], [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], "1-D"),
        ([0.0, 80.0], [1.0, 1.0, 1.0], "one length"),
        ([5.0, 5.0], [1.0, 1.0], "must increase"),  # a zero span
        ([5.0, 5.0, 5.0], [0.0, 0.5, 1.0], "must increase"),
        ([80.0, 0.0], [1.0, 0.0], "must increase"),
        ([0.0, 50.0, 20.0, 80.0], [0.0, 1.0, 0.0, 1.0], "must increase"),  # increasing ends are not enough
        ([0.0, 0.0, 80.0], [0.0, 1.0, 1.0], "must increase"),
        ([0.0, float("nan"), 80.0], [0.0, 1.0, 1.0], "must increase"),
    ],
)
def test_auc_refuses_bad_curves(thresholds, rates, message):
    with pytest.raises(ValueError, match=message):
        metrics.auc(thresholds, rates)
