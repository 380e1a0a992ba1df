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
