"""Chapter 7's homography package: warp vs kornia/scikit-image, IC-LK, metrics by hand, data, errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dlc_teach.datasets import DataNotFoundError
from dlc_teach.tasks.homography import (
    DeepLKFeatures, DeepLKHomography, align, baseline_homographies, check_corners, homography_to_offsets,
    inverse_compositional_lk, load_deeplk_folder, load_pairs, make_basemap_pairs, make_loss,
    offsets_to_homography, pixel_error, scale_homography, success_rates, warp)


def _image(size=128):
    import skimage.color
    import skimage.data

    img = torch.tensor(skimage.color.rgb2gray(skimage.data.astronaut()), dtype=torch.float32)[None, None]
    img = torch.nn.functional.avg_pool2d(img, 2)  # [1, 1, 256, 256]
    return img[..., 40:40 + size, 60:60 + size].contiguous()


def _random_offsets(n, amp, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 8, generator=g, dtype=torch.float64) * 2 - 1) * amp


def test_warp_matches_kornia_and_skimage():
    import kornia
    import skimage.transform

    img = _image().expand(2, 1, 128, 128).contiguous()
    H = offsets_to_homography(_random_offsets(2, 16), 64, 32.0).float()
    out = warp(img, H, 64)
    ref = kornia.geometry.transform.warp_perspective(img, torch.linalg.inv(H), (64, 64), align_corners=True)
    assert torch.allclose(out, ref, atol=1e-4)
    sk = skimage.transform.warp(img[0, 0].double().numpy(), skimage.transform.ProjectiveTransform(H[0].double().numpy()),
                                output_shape=(64, 64), order=1, cval=0.0)
    assert np.abs(out[0, 0].numpy() - sk).max() < 1e-4


def test_warp_batches_leading_points_in_one_call():
    img = torch.rand(3, 2, 40, 40)
    H = offsets_to_homography(_random_offsets(5 * 3, 4).view(5, 3, 8), 20, 10.0).float()  # [5, 3, 3, 3]
    out = warp(img, H, (20, 20))
    assert out.shape == (5, 3, 2, 20, 20)
    assert torch.allclose(out[2], warp(img, H[2], 20), atol=1e-6)


def test_warp_pixel_centre_convention_and_zeros_outside():
    img = torch.arange(16.0).view(1, 1, 4, 4)
    T = torch.eye(3)[None].clone()
    T[0, 0, 2] = 1.0  # template x -> input x + 1
    out = warp(img, T, (4, 4))[0, 0]
    assert torch.equal(out[:, :3], img[0, 0, :, 1:])  # integer shift: exact pixels
    assert torch.equal(out[:, 3], torch.zeros(4))  # outside the image: zeros
    half = T.clone()
    half[0, 0, 2] = 0.5
    assert torch.allclose(warp(img, half, (4, 4))[0, 0, 0, 0], torch.tensor(0.5))


def test_offsets_homography_roundtrip_and_rest_position():
    H0 = offsets_to_homography(torch.zeros(8), 128, 32.0)
    assert torch.allclose(H0, torch.tensor([[1.0, 0, 32], [0, 1, 32], [0, 0, 1]]))
    om = _random_offsets(4, 32)
    assert torch.allclose(homography_to_offsets(offsets_to_homography(om, 128, 32.0), 128, 32.0), om, atol=1e-8)


def test_scale_homography_pixel_centres():
    H = offsets_to_homography(_random_offsets(3, 16), 128, 32.0)
    assert torch.allclose(scale_homography(scale_homography(H, 0.25), 4.0), H, atol=1e-9)
    T = torch.eye(3, dtype=torch.float64)
    T[0, 2] = 2.0  # 2 px at full resolution = 1 px at half
    assert torch.allclose(scale_homography(T, 0.5)[0, 2], torch.tensor(1.0, dtype=torch.float64))
    # the pixel-centre convention: 2x2 area averages of a warped image = the warp at half scale (inside)
    img = _image(128)
    Hs = offsets_to_homography(_random_offsets(1, 6, seed=3), 64, 32.0).float()
    fine = torch.nn.functional.avg_pool2d(warp(img, Hs, 64), 2)
    coarse = warp(torch.nn.functional.avg_pool2d(img, 2), scale_homography(Hs.double(), 0.5).float(), 32)
    assert (fine - coarse)[..., 2:-2, 2:-2].abs().mean() < 0.02


def test_ic_lk_recovers_a_known_homography_on_raw_intensities():
    img = torch.nn.functional.avg_pool2d(_image(96), 3, 1, 1).expand(2, 1, 96, 96).contiguous()
    H_true = offsets_to_homography(_random_offsets(2, 4, seed=1), 64, 16.0)
    tpl = warp(img, H_true.float(), 64)
    H0 = offsets_to_homography(torch.zeros(2, 8, dtype=torch.float64), 64, 16.0).float()
    assert pixel_error(H0, H_true, 64).min() > 1.0
    H = inverse_compositional_lk(tpl, img, H0, iters=50)
    assert pixel_error(H, H_true, 64).max() < 0.05


def test_pixel_error_and_success_rates_by_hand():
    H_true = torch.eye(3, dtype=torch.float64).expand(3, 3, 3).clone()
    H_pred = H_true.clone()
    H_pred[0, 0, 2], H_pred[0, 1, 2] = 3.0, 4.0  # every corner 5 px away
    H_pred[1, 0, 0] = 2.0  # x doubled: corners at x = 0 stay, x = 127 move 127 px -> mean 63.5
    pe = pixel_error(H_pred, H_true, 128)
    assert torch.allclose(pe, torch.tensor([5.0, 63.5, 0.0], dtype=torch.float64))
    rates = success_rates(torch.tensor([0.05, 2.0, 4.0, 30.0]))
    assert rates == {0.1: 25.0, 0.5: 25.0, 1: 25.0, 3: 50.0, 5: 75.0, 10: 75.0, 20: 75.0}
    H_pred[2, 2] = 0.0  # every corner at infinity (or 0/0): PE must be inf, not a number
    assert math.isinf(float(pixel_error(H_pred, H_true, 128)[2]))


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match=r"\[B, C, h, w\]"):
        warp(torch.rand(3, 8, 8), torch.eye(3)[None], 4)
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, 3, 3\]"):
        warp(torch.rand(2, 1, 8, 8), torch.eye(3)[None], 4)
    folded = torch.zeros(8)
    folded[2], folded[4] = 140.0, -140.0  # top-right corner pushed past the bottom-right one: a fold
    with pytest.raises(ValueError, match="fold"):
        check_corners(folded, 128)
    with pytest.raises(ValueError, match=r"\[B, 3, 3\]"):
        pixel_error(torch.eye(3), torch.eye(3))
    with pytest.raises(ValueError, match="non-empty"):
        success_rates(torch.tensor([]))
    net = DeepLKFeatures(3, 3, 4, 2, 1)
    with pytest.raises(ValueError, match=r"\[B, 3, h, w\]"):
        net(torch.rand(1, 1, 48, 48), torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 3, 50, 50), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown data source"):
        load_pairs("flickr", "train", 4)


def test_basemap_pairs_are_the_relief_seen_through_the_true_homography():
    inp, tpl, om = make_basemap_pairs(4, "test", 48, 32, 8.0, seed=0)
    assert inp.shape == (4, 3, 48, 48) and tpl.shape == (4, 3, 32, 32) and om.shape == (4, 8)
    assert float(om.abs().max()) <= 8.0 and 0 <= float(inp.min()) and float(inp.max()) <= 1
    a, b, c = make_basemap_pairs(4, "test", 48, 32, 8.0, seed=0)
    assert torch.equal(a, inp) and torch.equal(c, om)  # deterministic given the seed
    with pytest.raises(ValueError, match="max_perturb"):
        make_basemap_pairs(2, "train", 48, 32, 9.0)


def test_deeplk_folder_loader_reads_its_layout(tmp_path):
    import matplotlib.pyplot as plt

    root = tmp_path / "GoogleEarth"
    for k in ("input", "template", "label"):
        (root / f"val2014_{k}").mkdir(parents=True)
    rng = np.random.default_rng(0)
    plt.imsave(root / "val2014_input" / "a.png", rng.random((192, 192, 3)))
    plt.imsave(root / "val2014_template" / "a.png", rng.random((128, 128, 3)))
    loc = [{"top_left_u": 30, "top_left_v": 35}, {"top_right_u": 161, "top_right_v": 30},
           {"bottom_left_u": 33, "bottom_left_v": 158}, {"bottom_right_u": 160, "bottom_right_v": 163}]
    (root / "val2014_label" / "a_label.txt").write_text(json.dumps({"location": loc}))
    inp, tpl, om = load_deeplk_folder(root, "val")
    assert inp.shape == (1, 3, 192, 192) and tpl.shape == (1, 3, 128, 128)
    assert om[0].tolist() == [-2, 3, 2, -2, 1, 4, 1, -1]  # TL, TR, BR, BL minus (32,32),(159,32),(159,159),(32,159)
    with pytest.raises(DataNotFoundError, match="train2014_input"):
        load_deeplk_folder(root, "train")
    with pytest.raises(DataNotFoundError, match="GoogleMap"):
        load_pairs("googlemap", "test", 1, data_dir=str(tmp_path))


def test_h_is_the_lk_loss_per_level_and_batches_all_points():
    exp = DeepLKHomography.from_preset("tiny")
    c = exp.config
    inp, tpl, om = make_basemap_pairs(2, "train", c.input_size, c.template_size, c.max_perturb, seed=1)
    model = exp.build_model()
    h, om_rep = make_loss(model, (inp, tpl, om), c)
    assert om_rep.shape == (3 * 2, 8)
    pts = om_rep + torch.randn(7, 6, 8)
    vals = h(pts)
    assert vals.shape == (7, 6)
    from dlc_teach.tasks.homography.lk import lk_loss

    ft, fi, s = model(inp, tpl, levels=(2,))[0]  # the middle block is level 2, ω in its pixels
    H = scale_homography(offsets_to_homography(pts[3, 2:4].double() / s, c.template_size, 8.0), s).float()
    assert torch.allclose(vals[3, 2:4], lk_loss(ft, fi, H), rtol=1e-5)


def test_align_and_baseline_on_same_modality():
    exp = DeepLKHomography.from_preset("tiny")
    c = exp.config
    inp, _, om = make_basemap_pairs(4, "train", c.input_size, c.template_size, c.max_perturb, seed=2)
    H_true = offsets_to_homography(om.double(), c.template_size, 8.0)
    tpl = warp(inp, H_true.float(), c.template_size)  # same modality: raw LK must work
    import dataclasses

    H = align(None, inp, tpl, dataclasses.replace(c, lk_iters=30))
    assert float(pixel_error(H, H_true, c.template_size).median()) < 0.5
    H_b, ok = baseline_homographies(inp, tpl, H_true * 0 + torch.eye(3, dtype=torch.float64), method="orb")
    assert H_b.shape == (4, 3, 3) and ok.dtype == torch.bool


def test_tiny_training_runs_with_and_without_dlc():
    from dlc_teach.training import train

    for dlc in (False, True):
        res = train(DeepLKHomography.from_preset("tiny"), dlc=dlc, progress=False, log=None, max_steps=2)
        assert math.isfinite(res["history"][0]["objective"])
        assert set(res["final"]) >= {"test_sr_5", "test_pe_median", "test_feat_std", "test_loss"}
