import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpbench.data.camera import Camera
from hpbench.data.specs import datasets, get_dataset


@pytest.mark.parametrize("name", ["icvl", "nyu", "msra"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_uvd_xyz_round_trip(name, data):
    camera = get_dataset(name).camera
    shape = data.draw(st.tuples(st.integers(1, 5), st.integers(1, 21)))
    u = data.draw(arrays(np.float64, shape, elements=st.floats(-50, camera.width_px + 50)))
    v = data.draw(arrays(np.float64, shape, elements=st.floats(-50, camera.height_px + 50)))
    d = data.draw(arrays(np.float64, shape, elements=st.floats(50, 3000)))
    uvd = np.stack([u, v, d], axis=-1)
    back = camera.xyz_to_uvd(camera.uvd_to_xyz(uvd))
    np.testing.assert_allclose(back, uvd, rtol=1e-9, atol=1e-7)


def test_principal_point_is_on_the_axis_and_axes_follow_conventions():
    nyu, icvl = get_dataset("nyu").camera, get_dataset("icvl").camera
    assert np.allclose(nyu.uvd_to_xyz([320.0, 240.0, 700.0]), [0, 0, 700])
    # a point below the image centre (larger v) has y < 0 in NYU (y up), y > 0 in ICVL (y down)
    assert nyu.uvd_to_xyz([320.0, 300.0, 700.0])[1] < 0 < icvl.uvd_to_xyz([160.0, 150.0, 700.0])[1]
    assert nyu.y_up and not icvl.y_up


def test_hand_computed_projection():
    camera = Camera(fx=500.0, fy=-400.0, cx=100.0, cy=50.0, width_px=200, height_px=100)
    xyz = camera.uvd_to_xyz(np.array([[150.0, 10.0, 1000.0]]))
    np.testing.assert_allclose(xyz, [[100.0, 100.0, 1000.0]])  # (150-100)*1000/500, (10-50)*1000/-400
    assert not np.shares_memory(xyz, camera.xyz_to_uvd(xyz))


def test_dataset_specs_are_frozen_and_complete():
    assert {"icvl", "nyu", "msra"} <= set(datasets.names())
    spec = get_dataset("NYU")
    assert spec.num_joints == 14 and get_dataset("icvl").num_joints == 16 and get_dataset("msra").num_joints == 21
    assert len(set(spec.joint_names)) == spec.num_joints
    with pytest.raises(AttributeError):
        spec.camera.fx = 1.0  # type: ignore[misc]
    icvl = get_dataset("icvl")
    assert sum(len(r) for r in icvl.test_ranges) == icvl.num_test_frames


# --------------------------------------------------------------------------------------------------
# The real intrinsics (../shared/handpose-eval/README.md) and hand-computed projections (issue 17):
#   x = (u - cx) d / fx,  y = (v - cy) d / fy,  z = d;   u = x fx / z + cx,  v = y fy / z + cy
# ICVL fx 240.99, fy 240.96, cx 160, cy 120; NYU fx 588.03, fy -587.07, cx 320, cy 240.
#
# Depth at or behind the camera (decided here, issue 17): the camera is the pinhole algebra and
# nothing else, so that scoring a wild prediction file never crashes on a bad row. uvd -> xyz is
# defined for every d: d = 0 is the camera centre (0, 0, 0) whatever (u, v), and d < 0 is the point
# mirrored behind the camera (the same formula; it round-trips). xyz -> uvd at z = 0 has no
# projection: u, v come out +-inf (nan where x or y is 0 too), z stays 0, and no numpy warning is
# emitted. Callers that need a valid depth check it themselves (crop_transform refuses d <= 0;
# crop_depth treats depth <= 0 as no reading).


def test_dataset_intrinsics_are_the_toolkits():
    icvl, nyu = get_dataset("icvl").camera, get_dataset("nyu").camera
    assert (icvl.fx, icvl.fy, icvl.cx, icvl.cy) == (240.99, 240.96, 160.0, 120.0)
    assert (nyu.fx, nyu.fy, nyu.cx, nyu.cy) == (588.03, -587.07, 320.0, 240.0)
    assert (icvl.width_px, icvl.height_px, nyu.width_px, nyu.height_px) == (320, 240, 640, 480)


def test_icvl_uvd_to_xyz_by_hand():
    icvl = get_dataset("icvl").camera
    uvd = [[[200.0, 100.0, 400.0], [100.0, 50.0, -300.0]]]  # a nested list, (1, 2, 3)
    expected = [[
        [66.39279638159259, -33.200531208499335, 400.0],  # 40 * 400 / 240.99, -20 * 400 / 240.96
        [74.69189592929168, 87.15139442231076, -300.0],  # -60 * -300 / 240.99, -70 * -300 / 240.96
    ]]
    np.testing.assert_allclose(icvl.uvd_to_xyz(uvd), expected, rtol=1e-12)
    np.testing.assert_allclose(icvl.xyz_to_uvd(expected), uvd, rtol=1e-12)


def test_nyu_uvd_to_xyz_by_hand():
    nyu = get_dataset("nyu").camera
    uvd = np.array([[[400.0, 300.0, 800.0], [0.0, 480.0, 1000.0], [320.0, 240.0, 650.0]]])  # (1, 3, 3)
    expected = [[
        [108.83798445657536, -81.76197046348817, 800.0],  # 80 * 800 / 588.03, 60 * 800 / -587.07
        [-544.1899222828768, -408.8098523174408, 1000.0],  # -320 * 1000 / 588.03, 240 * 1000 / -587.07
        [0.0, 0.0, 650.0],  # the principal point
    ]]
    np.testing.assert_allclose(nyu.uvd_to_xyz(uvd), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nyu.xyz_to_uvd(expected), uvd, rtol=1e-12)


def test_xyz_to_uvd_by_hand():
    icvl, nyu = get_dataset("icvl").camera, get_dataset("nyu").camera
    # 100 * 240.99 / 500 + 160 = 208.198; -50 * 240.96 / 500 + 120 = 95.904
    np.testing.assert_allclose(icvl.xyz_to_uvd([100.0, -50.0, 500.0]), [208.198, 95.904, 500.0], rtol=1e-12)
    # -200 * 588.03 / 900 + 320 = 189.326666...; 150 * -587.07 / 900 + 240 = 142.155
    np.testing.assert_allclose(nyu.xyz_to_uvd([[-200.0, 150.0, 900.0]]), [[189.32666666666665, 142.155, 900.0]],
                               rtol=1e-12)


@pytest.mark.filterwarnings("error")
def test_depth_zero_and_behind_the_camera():
    icvl, nyu = get_dataset("icvl").camera, get_dataset("nyu").camera
    # d = 0: the camera centre, whatever the pixel
    np.testing.assert_array_equal(icvl.uvd_to_xyz([[17.0, 230.0, 0.0], [160.0, 120.0, 0.0]]), np.zeros((2, 3)))
    # z = 0: no projection; inf with the sign of x fx (and y fy), nan for 0 / 0, and no warning
    uvd = icvl.xyz_to_uvd([[10.0, -5.0, 0.0], [0.0, 0.0, 0.0]])
    assert uvd[0, 0] == np.inf and uvd[0, 1] == -np.inf and uvd[0, 2] == 0.0
    assert np.isnan(uvd[1, :2]).all() and uvd[1, 2] == 0.0
    assert nyu.xyz_to_uvd([10.0, -5.0, 0.0])[1] == np.inf  # fy < 0 flips v's sign
    # d < 0: the mirrored point, the same formula, and back
    behind = nyu.uvd_to_xyz([400.0, 300.0, -800.0])
    np.testing.assert_allclose(behind, [-108.83798445657536, 81.76197046348817, -800.0], rtol=1e-12)
    np.testing.assert_allclose(nyu.xyz_to_uvd(behind), [400.0, 300.0, -800.0], rtol=1e-12)


def test_y_up_follows_the_sign_of_fy():
    def camera(fy: float) -> Camera:
        return Camera(fx=1.0, fy=fy, cx=0.0, cy=0.0, width_px=2, height_px=2)

    assert camera(-587.07).y_up is True and camera(-0.5).y_up is True
    assert camera(240.96).y_up is False and camera(0.5).y_up is False
