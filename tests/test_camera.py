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
