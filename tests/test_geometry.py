"""Reference tests of the charts: Euler angles against scipy, homographies against kornia and scikit-image."""
import numpy as np
import pytest
import torch
from kornia.geometry.transform import get_perspective_transform
from scipy.spatial.transform import Rotation
from skimage.transform import ProjectiveTransform

from dlc_teach.geometry import (
    corners_to_homography,
    euler_to_matrix,
    homography_to_corners,
    matrix_to_euler,
    se3_to_matrix,
    template_corners,
)

F64 = torch.float64


def _angles(n, seed=0, max_y=89.0):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, 3, generator=g, dtype=F64) * 2 - 1) * 180.0  # [n, 3] in (-180, 180)
    a[:, 1] = a[:, 1] / 180.0 * max_y  # α_y in (-max_y, max_y): where matrix_to_euler inverts
    return a


# --- Euler angles --------------------------------------------------------------------------------
def test_euler_to_matrix_matches_scipy_intrinsic_xyz():
    a = _angles(200)
    R = euler_to_matrix(a)
    ref = Rotation.from_euler("XYZ", a.numpy(), degrees=True).as_matrix()
    np.testing.assert_allclose(R.numpy(), ref, atol=1e-12)


def test_euler_to_matrix_is_rx_ry_rz():
    """R = Rx·Ry·Rz: the product of the three single-axis rotations (the DCP data convention)."""
    a = torch.tensor([30.0, -20.0, 75.0], dtype=F64)
    Rx, Ry, Rz = (euler_to_matrix(torch.tensor(v, dtype=F64)) for v in ([30.0, 0, 0], [0, -20.0, 0], [0, 0, 75.0]))
    torch.testing.assert_close(euler_to_matrix(a), Rx @ Ry @ Rz)
    c, s = np.cos(np.deg2rad(30.0)), np.sin(np.deg2rad(30.0))
    np.testing.assert_allclose(Rx.numpy(), [[1, 0, 0], [0, c, -s], [0, s, c]], atol=1e-15)


def test_rotations_are_orthonormal_with_det_one():
    R = euler_to_matrix(_angles(100, seed=1))
    eye = torch.eye(3, dtype=F64).expand(100, 3, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=F64), atol=1e-12, rtol=0)


def test_matrix_to_euler_round_trip_and_scipy():
    a = _angles(200, seed=2)
    back = matrix_to_euler(euler_to_matrix(a))
    torch.testing.assert_close(back, a, atol=1e-9, rtol=0)
    R = Rotation.random(50, random_state=3).as_matrix()
    ref = Rotation.from_matrix(R).as_euler("XYZ", degrees=True)
    np.testing.assert_allclose(matrix_to_euler(torch.from_numpy(R)).numpy(), ref, atol=1e-9)


def test_euler_batch_shapes_and_float32():
    a = _angles(12).reshape(2, 2, 3, 3).float()
    R = euler_to_matrix(a)
    assert R.shape == (2, 2, 3, 3, 3) and R.dtype == torch.float32
    assert matrix_to_euler(R).shape == (2, 2, 3, 3)


def test_se3_to_matrix_splits_rotation_and_translation():
    omega = torch.tensor([[10.0, 20.0, 30.0, 0.1, -0.2, 0.3]], dtype=F64)
    R, t = se3_to_matrix(omega)
    torch.testing.assert_close(R, euler_to_matrix(omega[:, :3]))
    torch.testing.assert_close(t, omega[:, 3:])


# --- homographies --------------------------------------------------------------------------------
H_, W_ = 128, 160  # template height, width (non-square, so that x/y mix-ups show)


def _offsets(n, scale=20.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 8, generator=g, dtype=F64) * 2 - 1) * scale  # [n, 8]


def test_template_corners_order():
    c = template_corners(H_, W_, dtype=F64)
    torch.testing.assert_close(c, torch.tensor([[0, 0], [159, 0], [159, 127], [0, 127]], dtype=F64))


def test_zero_offsets_give_the_identity():
    torch.testing.assert_close(corners_to_homography(torch.zeros(8, dtype=F64), H_, W_), torch.eye(3, dtype=F64))


def test_corners_to_homography_matches_kornia():
    off = _offsets(32)
    src = template_corners(H_, W_, dtype=F64).expand(32, 4, 2)
    ref = get_perspective_transform(src, src + off.reshape(32, 4, 2))
    ref = ref / ref[:, 2:, 2:]
    torch.testing.assert_close(corners_to_homography(off, H_, W_), ref, atol=1e-9, rtol=1e-7)


def test_corners_to_homography_matches_skimage():
    off = _offsets(8, seed=1)
    src = template_corners(H_, W_, dtype=F64).numpy()
    H = corners_to_homography(off, H_, W_)
    for k in range(8):
        dst = src + off[k].reshape(4, 2).numpy()
        if hasattr(ProjectiveTransform, "from_estimate"):  # scikit-image >= 0.26
            tf = ProjectiveTransform.from_estimate(src, dst)
        else:
            tf = ProjectiveTransform()
            assert tf.estimate(src, dst)
        np.testing.assert_allclose(H[k].numpy(), tf.params / tf.params[2, 2], atol=1e-9, rtol=1e-7)


def test_homography_maps_corners_to_the_offset_corners_and_back():
    off = _offsets(64, seed=2).reshape(4, 16, 8)  # extra batch dims
    H = corners_to_homography(off, H_, W_)
    assert H.shape == (4, 16, 3, 3)
    torch.testing.assert_close(homography_to_corners(H, H_, W_), off, atol=1e-9, rtol=0)


def test_homography_of_a_pure_translation():
    off = torch.tensor([3.0, -2.0] * 4, dtype=F64)
    H = corners_to_homography(off, H_, W_)
    expected = torch.tensor([[1, 0, 3.0], [0, 1, -2.0], [0, 0, 1]], dtype=F64)
    torch.testing.assert_close(H, expected, atol=1e-12, rtol=0)


def test_homography_is_differentiable_in_the_offsets():
    off = _offsets(2, scale=5.0, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda o: corners_to_homography(o, 16, 24), (off,))


# --- shape errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,arg,word", [
    (euler_to_matrix, torch.zeros(4, 2), r"\[\.\.\., 3\]"),
    (matrix_to_euler, torch.zeros(4, 3, 2), r"\[\.\.\., 3, 3\]"),
    (se3_to_matrix, torch.zeros(4, 3), r"\[\.\.\., 6\]"),
    (lambda x: corners_to_homography(x, 8, 8), torch.zeros(4, 6), r"\[\.\.\., 8\]"),
    (lambda x: homography_to_corners(x, 8, 8), torch.zeros(4, 2, 3), r"\[\.\.\., 3, 3\]"),
])
def test_shape_errors(fn, arg, word):
    with pytest.raises(ValueError, match=word):
        fn(arg)


@pytest.mark.parametrize("h,w", [(1, 10), (10, 1), (0, 0)])
def test_template_too_small(h, w):
    with pytest.raises(ValueError, match="at least 2x2"):
        template_corners(h, w)
