"""Chapter 6 library: Kabsch, ICP, DCP's metrics, the ModelNet40 loader, pairs, DCP, the two h's, presets."""
from __future__ import annotations

import dataclasses
import math

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dlc_teach.datasets import ChecksumError, DataNotFoundError
from dlc_teach.geometry import euler_to_matrix, matrix_to_euler
from dlc_teach.tasks import get_experiment
from dlc_teach.tasks.registration import (DCP, Registration, RegistrationConfig, RegistrationDCPLoss,
                                          RegistrationPairs, apply_rigid, chained_forward, compose,
                                          correspondence_h, dcp_loss_h, icp, iteration_map, kabsch,
                                          load_modelnet40, procedural_clouds, registration_errors)
from dlc_teach.tasks.registration.data import MODELNET_URL, cgal_archive


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_motion(B, gen, max_deg=45.0):
    angles = torch.rand(B, 3, generator=gen, dtype=torch.float64) * max_deg
    t = torch.rand(B, 3, generator=gen, dtype=torch.float64) - 0.5
    return euler_to_matrix(angles), t, angles


# --- Kabsch / ICP -------------------------------------------------------------------------------
def test_kabsch_recovers_an_exact_motion_and_matches_scipy_with_weights():
    g = torch.Generator().manual_seed(0)
    R, t, _ = _random_motion(4, g)
    src = torch.randn(4, 50, 3, generator=g, dtype=torch.float64)
    dst = apply_rigid(R, t, src)
    R_hat, t_hat = kabsch(src, dst)
    assert torch.allclose(R_hat, R, atol=1e-10) and torch.allclose(t_hat, t, atol=1e-10)
    # noisy + weighted: the weighted least-squares rotation equals scipy's align_vectors on centred points
    noisy = dst + 0.05 * torch.randn(dst.shape, generator=g, dtype=torch.float64)
    w = torch.rand(4, 50, generator=g, dtype=torch.float64) + 0.1
    R_w, t_w = kabsch(src, noisy, w)
    for b in range(4):
        wn = (w[b] / w[b].sum()).numpy()
        cs, cd = wn @ src[b].numpy(), wn @ noisy[b].numpy()
        rot, _ = Rotation.align_vectors(noisy[b].numpy() - cd, src[b].numpy() - cs, weights=wn)
        assert np.allclose(R_w[b].numpy(), rot.as_matrix(), atol=1e-8)
        assert np.allclose(t_w[b].numpy(), cd - rot.as_matrix() @ cs, atol=1e-8)


def test_kabsch_returns_a_rotation_for_a_reflected_target():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(2, 30, 3, generator=g)
    dst = src * torch.tensor([1.0, 1.0, -1.0])  # a mirror image: the best orthogonal fit has det -1
    R, _ = kabsch(src, dst)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2), atol=1e-5)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert R.dtype == torch.float32


def test_kabsch_and_icp_reject_bad_input():
    x = torch.randn(2, 10, 3)
    with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
        kabsch(torch.randn(2, 10, 2), x)
    with pytest.raises(ValueError, match="same shape"):
        kabsch(x, torch.randn(2, 11, 3))
    with pytest.raises(ValueError, match="batch size"):
        kabsch(x, torch.randn(3, 10, 3))
    with pytest.raises(TypeError, match="floating-point"):
        kabsch(x.long(), x)
    with pytest.raises(ValueError, match="weights"):
        kabsch(x, x, torch.ones(2, 9))
    with pytest.raises(ValueError, match="positive sum"):
        kabsch(x, x, torch.zeros(2, 10))
    with pytest.raises(ValueError, match="iters"):
        icp(x, x, iters=-1)
    with pytest.raises(ValueError, match="R0"):
        icp(x, x, R0=torch.eye(3))


def test_icp_recovers_a_known_motion_with_permuted_target():
    g = torch.Generator().manual_seed(2)
    clouds = torch.as_tensor(procedural_clouds("organic", 3, 300, seed=0), dtype=torch.float64)
    angles = torch.tensor([[10.0, -5.0, 8.0], [3.0, 12.0, -6.0], [0.0, 0.0, 15.0]], dtype=torch.float64)
    R, t = euler_to_matrix(angles), torch.tensor([[0.05, -0.02, 0.03]] * 3, dtype=torch.float64)
    dst = apply_rigid(R, t, clouds)[:, torch.randperm(300, generator=g)]
    R_hat, t_hat = icp(clouds, dst, iters=50)
    err = registration_errors(R_hat, t_hat, R, t)
    assert err["rmse_euler"] < 1e-3 and err["rmse_t"] < 1e-5
    # started at the truth it stays there; zero iterations return the start
    R1, t1 = icp(clouds, dst, R0=R, t0=t, iters=5)
    assert torch.allclose(R1, R, atol=1e-9)
    R0, t0 = icp(clouds, dst, iters=0)
    assert torch.equal(R0, torch.eye(3, dtype=torch.float64).expand(3, 3, 3)) and not t0.any()


def test_compose_applies_the_first_motion_first():
    g = torch.Generator().manual_seed(3)
    R1, t1, _ = _random_motion(2, g)
    R2, t2, _ = _random_motion(2, g)
    x = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    R, t = compose(R2, t2, R1, t1)
    assert torch.allclose(apply_rigid(R, t, x), apply_rigid(R2, t2, apply_rigid(R1, t1, x)))


# --- metrics ------------------------------------------------------------------------------------
def test_registration_errors_by_hand():
    R_true = torch.eye(3).expand(2, 3, 3)
    R_pred = euler_to_matrix(torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, -4.0]]))
    t_true = torch.zeros(2, 3)
    t_pred = torch.tensor([[0.1, 0.0, 0.0], [0.0, -0.2, 0.0]])
    e = registration_errors(R_pred, t_pred, R_true, t_true)
    assert e["mse_euler"] == pytest.approx((9 + 16) / 6, rel=1e-5)
    assert e["mae_euler"] == pytest.approx(7 / 6, rel=1e-5)
    assert e["rmse_euler"] == pytest.approx(math.sqrt(25 / 6), rel=1e-5)
    assert e["mse_t"] == pytest.approx((0.01 + 0.04) / 6, rel=1e-5)
    assert e["mae_t"] == pytest.approx(0.3 / 6, rel=1e-5) and e["rmse_t"] == pytest.approx(math.sqrt(0.05 / 6))
    assert e["mse_R"] == pytest.approx(float(((R_pred - R_true) ** 2).mean()), rel=1e-6)
    with pytest.raises(ValueError, match=r"R_pred must have shape \[B, 3, 3\]"):
        registration_errors(torch.eye(3), t_pred, R_true, t_true)
    with pytest.raises(ValueError, match="one batch size"):
        registration_errors(R_pred, t_pred[:1], R_true, t_true)


# --- ModelNet40 loader --------------------------------------------------------------------------
def _write_h5(path, n, labels, points=2048, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, points, 3)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["label"] = np.asarray(labels, dtype=np.uint8).reshape(-1, 1)
    return data


def test_load_modelnet40_reads_h5_keeps_first_points_and_splits_unseen(tmp_path):
    root = tmp_path / "modelnet40_ply_hdf5_2048"
    root.mkdir()
    a = _write_h5(root / "ply_data_train0.h5", 4, [0, 25, 3, 39], seed=0)
    b = _write_h5(root / "ply_data_train1.h5", 2, [19, 20], seed=1)
    c = _write_h5(root / "ply_data_test0.h5", 3, [1, 30, 21], seed=2)
    x, y = load_modelnet40(tmp_path, "train", num_points=1024, verify=False)  # parent dir works too
    assert x.shape == (6, 1024, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.array_equal(x[:4], a[:, :1024]) and np.array_equal(x[4:], b[:, :1024])
    assert y.tolist() == [0, 25, 3, 39, 19, 20]
    xs, ys = load_modelnet40(root, "train", unseen=True, verify=False)
    assert ys.tolist() == [0, 3, 19] and np.array_equal(xs[0], a[0, :1024])
    xt, yt = load_modelnet40(root, "test", unseen=True, num_points=16, verify=False)
    assert yt.tolist() == [30, 21] and np.array_equal(xt[0], c[1, :16])


def test_load_modelnet40_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown partition 'val'"):
        load_modelnet40(tmp_path, "val")
    with pytest.raises(DataNotFoundError, match=MODELNET_URL.replace(".", r"\.")):
        load_modelnet40(tmp_path, "train")
    (tmp_path / "ply_data_test0.h5").write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="not a readable ModelNet40 h5"):
        load_modelnet40(tmp_path, "test", verify=False)
    with pytest.raises(ChecksumError, match="MD5"):  # the registry lists ply_data_test0.h5
        load_modelnet40(tmp_path, "test")
    _write_h5(tmp_path / "ply_data_train0.h5", 2, [0, 1], points=100)
    with pytest.raises(ValueError, match="fewer than num_points"):
        load_modelnet40(tmp_path, "train", verify=False)


# --- pairs --------------------------------------------------------------------------------------
def test_pairs_follow_dcp_and_test_pairs_are_fixed():
    clouds = procedural_clouds("cad", 2, 64, seed=0)
    ds = RegistrationPairs(clouds, 64, 5, fixed=True, seed=3)
    src, tgt, omega = ds[1]
    assert src.shape == tgt.shape == (64, 3) and omega.shape == (6,)
    assert (omega[:3] >= 0).all() and (omega[:3] <= 45).all() and (omega[3:].abs() <= 0.5).all()
    R, t = euler_to_matrix(omega[:3].double()).float(), omega[3:]
    moved = src @ R.T + t  # the same points, permuted independently
    assert torch.cdist(moved, tgt, compute_mode="donot_use_mm_for_euclid_dist").min(1).values.max() < 1e-5
    assert not torch.allclose(moved, tgt)
    assert all(torch.equal(u, v) for u, v in zip(ds[1], ds[1]))
    ind = RegistrationPairs(procedural_clouds("cad", 2, 256, seed=0), 64, 2, independent_target=True,
                            fixed=True, jitter=0.01)
    s2, t2, o2 = ind[0]
    moved = s2 @ euler_to_matrix(o2[:3].double()).float().T + o2[3:]
    assert torch.cdist(moved, t2).min(1).values.max() > 1e-4  # no shared points
    with pytest.raises(ValueError, match="needs at least 128"):
        RegistrationPairs(clouds, 64, 2, independent_target=True)
    with pytest.raises(ValueError, match=r"\[M, P, 3\]"):
        RegistrationPairs(np.zeros((2, 64)), 32, 2)


def test_procedural_clouds_are_normalised_and_reject_unknown_family():
    x = procedural_clouds("organic", 3, 200, seed=1)
    assert x.shape == (3, 200, 3) and np.allclose(np.linalg.norm(x, axis=-1).max(1), 1.0)
    with pytest.raises(ValueError, match="unknown shape family"):
        procedural_clouds("cars", 1, 10)


# --- model and the two h's ----------------------------------------------------------------------
def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return DCP(emb=16, widths=(8, 8, 16, 16), k=4, heads=4, ff=32).eval()


def test_dcp_outputs_rotations_and_ignores_target_order():
    m = _tiny_model()
    g = torch.Generator().manual_seed(4)
    src, tgt = torch.randn(3, 20, 3, generator=g), torch.randn(3, 24, 3, generator=g)
    with torch.no_grad():
        R, t, matches = m(src, tgt)
        R2, t2, _ = m(src, tgt[:, torch.randperm(24, generator=g)])
    assert R.shape == (3, 3, 3) and t.shape == (3, 3) and matches.shape == (3, 20, 3)
    assert torch.allclose(torch.linalg.det(R), torch.ones(3), atol=1e-5)
    assert torch.allclose(R, R2, atol=1e-4) and torch.allclose(t, t2, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[B, N, 3\]"):
        m(src[0], tgt)


def test_chained_forward_composes_passes_and_iteration_map_matches_it():
    m = _tiny_model()
    g = torch.Generator().manual_seed(5)
    src, tgt = torch.randn(2, 16, 3, generator=g), torch.randn(2, 16, 3, generator=g)
    with torch.no_grad():
        R1, t1, _ = m(src, tgt)
        R2, t2, _ = m(apply_rigid(R1, t1, src), tgt)
        R, t, _ = chained_forward(m, src, tgt, 2)
        gmap = iteration_map(m, src, tgt)
        w1 = gmap(torch.zeros(2, 6))
        w2 = gmap(w1)
    Rc, tc = compose(R2, t2, R1, t1)
    assert torch.allclose(R, Rc, atol=1e-5) and torch.allclose(t, tc, atol=1e-5)
    assert torch.allclose(euler_to_matrix(w2[:, :3]), R, atol=1e-4) and torch.allclose(w2[:, 3:], t, atol=1e-4)


def test_dcp_loss_h_is_zero_at_the_prediction_and_does_not_see_the_clouds():
    g = torch.Generator().manual_seed(6)
    R, t, angles = _random_motion(3, g)
    h = dcp_loss_h(R, t)
    omega = torch.cat([angles, t], -1)
    assert torch.allclose(h(omega.unsqueeze(0)), torch.zeros(1, 3, dtype=torch.float64), atol=1e-12)
    bumped = omega + torch.tensor([2.0, 0, 0, 0.1, 0, 0], dtype=torch.float64)
    assert h(torch.stack([omega, bumped])).shape == (2, 3) and (h(bumped) > 0).all()


def test_correspondence_h_is_minimised_by_the_kabsch_estimate():
    g = torch.Generator().manual_seed(7)
    src = torch.randn(2, 40, 3, generator=g, dtype=torch.float64)
    R, t, _ = _random_motion(2, g, max_deg=30)
    matches = apply_rigid(R, t, src) + 0.05 * torch.randn(2, 40, 3, generator=g, dtype=torch.float64)
    R_k, t_k = kabsch(src, matches)
    w_k = torch.cat([matrix_to_euler(R_k), t_k], -1)  # [2, 6]
    h = correspondence_h(src, matches)
    around = w_k + torch.randn(50, 2, 6, generator=g, dtype=torch.float64) * torch.tensor([2.0] * 3 + [0.05] * 3,
                                                                                          dtype=torch.float64)
    assert (h(around) >= h(w_k.unsqueeze(0)) - 1e-12).all()


# --- experiment ---------------------------------------------------------------------------------
def test_presets_registration_and_config_validation():
    for name, cls in (("registration", Registration), ("registration-dcploss", RegistrationDCPLoss)):
        assert get_experiment(name) is cls
        assert {"tiny", "ci", "gpu", "full"} <= set(cls.presets)
        for c in cls.presets.values():
            assert (c.rho, c.n_samples, c.chain, c.baseline_chain) == (0.6, 3, 4, 1) and c.learn_lam and c.learn_mu
        assert cls.presets["ci"].h == ("corr" if cls is Registration else "dcp")
        full = cls.presets["full"]
        assert (full.emb, full.widths, full.k, full.ff, full.num_points, full.batch_size) == \
            (512, (64, 64, 128, 256), 20, 1024, 1024, 32)
        assert (full.lr, full.weight_decay, full.data) == (1e-3, 1e-4, "modelnet40")
    base = Registration.presets["tiny"]
    with pytest.raises(ValueError, match="h and baseline_h"):
        dataclasses.replace(base, h="l2")
    with pytest.raises(ValueError, match="data must be one of"):
        dataclasses.replace(base, data="shapenet")
    with pytest.raises(ValueError, match="divisible by heads"):
        dataclasses.replace(base, emb=18)
    with pytest.raises(TypeError, match="RegistrationConfig"):
        Registration(get_experiment("toy-alignment").presets["tiny"])


def test_loss_fn_shapes_and_procedural_fallback(tmp_path):
    exp = Registration.from_preset("tiny", data_dir=str(tmp_path))  # no CGAL archive there
    train, test = exp.datasets()
    assert exp.data_source()["name"] == "procedural" and "procedural" in exp.source
    with pytest.raises(FileNotFoundError, match="fetch_offline_data"):
        Registration.from_preset("tiny", data_dir=str(tmp_path), data="cgal").datasets()
    model = exp.build_model()
    batch = [torch.stack(z) for z in zip(*(train[i] for i in range(4)))]
    h, omega_star = exp.loss_fn(model, batch)
    assert omega_star.shape == (4, 6) and h(omega_star.expand(7, 4, 6)).shape == (7, 4)
    res = exp.dlc_loss()(h, omega_star)
    res.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert exp.base_loss(model, batch).dim() == 0


@pytest.mark.skipif(cgal_archive() is None, reason="CGAL archive not fetched (scripts/fetch_offline_data.sh)")
def test_cgal_split_is_disjoint_and_named():
    exp = Registration.from_preset("tiny")
    cl = exp.clouds()
    assert exp.data_source()["name"] == "cgal"
    assert cl["train"].shape[0] == cl["seen"].shape[0] == 30 and cl["unseen"].shape[0] == 14
    assert not np.isin(cl["train"][0, :50], cl["seen"][0]).all()  # train/test sample other surface points


def test_evaluation_helpers_agree_with_the_chain_and_icp():
    from dlc_teach.tasks.registration import evaluate_passes, stack_pairs, trajectory_errors

    m = _tiny_model()
    clouds = procedural_clouds("organic", 2, 64, seed=2)
    pairs = stack_pairs(RegistrationPairs(clouds, 32, 4, independent_target=True, fixed=True))
    assert pairs["src"].shape == (4, 32, 3) and pairs["R"].shape == (4, 3, 3) and pairs["t"].shape == (4, 3)
    plain = trajectory_errors(m, pairs, steps=3)
    for k in (1, 3):
        assert plain[k - 1]["mse_euler"] == pytest.approx(evaluate_passes(m, pairs, passes=k)["mse_euler"],
                                                          rel=1e-4)
    avg = trajectory_errors(m, pairs, steps=3, averaged=True)
    assert avg[0] == pytest.approx(plain[0], rel=1e-6) and len(avg) == 3  # the first average is one pass
    ident = evaluate_passes(None, pairs)
    by_hand = registration_errors(torch.eye(3).expand(4, 3, 3), torch.zeros(4, 3), pairs["R"], pairs["t"])
    assert ident == pytest.approx(by_hand)
    assert evaluate_passes(None, pairs, icp_iters=20)["mse_t"] < ident["mse_t"]
