"""The fast paths of the training core: fused Adam with the authors' momentum rule, automatic precision,
the byte-mask dropout, the compiled loss, and runs without a test split (searches)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from fixtures_training import tiny_config

from dmvae.models.networks import Dropout
from dmvae.training import Trainer, resolve_precision


def test_networks_a_step_does_not_touch_keep_moving_with_adams_momentum(synthetic_splits) -> None:
    """Authors' schedule: after a paired step, an image-only step still moves the label networks (zero
    gradients, Adam's momentum), and leaves their gradients at zero."""
    config = tiny_config(train={"schedule": "authors", "epochs": 1})
    trainer = Trainer(config, splits=synthetic_splits(n_train=64, paired_fraction=0.25), progress=None)
    steps = trainer.schedule.epoch(trainer.generator)
    paired = next(step for step in steps if step[0].paired)
    unpaired = next(step for step in steps if not step[0].paired)
    trainer.schedule.epoch = lambda generator: [paired]
    trainer.train_epoch()
    label_parameters = list(trainer.model.encoders["label"].parameters())
    before = [parameter.detach().clone() for parameter in label_parameters]
    trainer.schedule.epoch = lambda generator: [unpaired]
    trainer.train_epoch()
    for parameter, old in zip(label_parameters, before, strict=True):
        assert torch.count_nonzero(parameter.grad) == 0
        assert not torch.equal(parameter.detach(), old)


def test_auto_precision_is_bf16_for_convnets_where_the_cpu_has_it_and_fp32_for_mlps() -> None:
    cpu = torch.device("cpu")
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 4))
    convnet = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", cpu, mlp) == "fp32"
    assert resolve_precision("auto", cpu, convnet) == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", cpu, convnet) == "fp32"
    assert resolve_precision("bf16", cpu, mlp) == "bf16"


@pytest.mark.parametrize("p", [0.25, 0.5, 0.1])
def test_dropout_drops_a_fraction_p_and_rescales_the_rest(p: float) -> None:
    layer = Dropout(p)
    x = torch.ones(64, 32, 16, 16).to(memory_format=torch.channels_last).requires_grad_()
    torch.manual_seed(0)
    y = layer(x)
    assert y.shape == x.shape
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 0.003  # 524,288 draws: the standard error is under 0.0007
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # d(x * mask * scale)/dx = mask * scale, and x = 1
    torch.manual_seed(0)
    assert torch.equal(layer(x), y)  # seeded: the same mask
    layer.eval()
    assert torch.equal(layer(x), x)


def test_the_compiled_loss_gives_the_eager_numbers(synthetic_splits) -> None:
    import torch._inductor.config as inductor

    splits = synthetic_splits(n_train=32, paired_fraction=0.5)
    losses = {}
    for compiled in (False, True):
        config = tiny_config(train={"epochs": 1, "compile": compiled})
        trainer = Trainer(config, splits=splits, progress=None)
        batch = splits.train.batch(torch.arange(16), ["image", "label"])
        torch.manual_seed(3)
        with inductor.patch(fallback_random=True):  # the same random draws as eager
            loss, terms = trainer.loss_fn(batch, 32, torch.tensor(1.0))
        losses[compiled] = (loss.item(), terms["recon_label"].item())
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_a_run_without_a_test_split_never_evaluates_one(synthetic_splits) -> None:
    splits = dataclasses.replace(synthetic_splits(), test=None)
    trainer = Trainer(tiny_config(train={"epochs": 2}), splits=splits, progress=None)
    final = trainer.fit()
    assert not any(key.startswith("test") for key in final)
    assert final["val_best_accuracy"] == trainer.best_score
    with pytest.raises(ValueError, match="without the test split"):
        trainer.evaluate("test")


def test_loading_without_the_test_split_reads_no_test_file(real_data_root, monkeypatch) -> None:
    from dmvae.config import DataConfig
    from dmvae.data import load_splits
    from dmvae.data import mnist as mnist_module

    read = []
    original = mnist_module.read_idx
    monkeypatch.setattr(mnist_module, "read_idx", lambda path: read.append(path.name) or original(path))
    config = DataConfig(name="mnist", root=str(real_data_root("mnist")), train_size=200)
    splits = load_splits(config, seed=0, progress=lambda message: None, with_test=False)
    assert splits.test is None and len(splits.train) == 200
    assert read and not any(name.startswith("t10k") for name in read)
    assert load_splits(config, seed=0, progress=lambda message: None).test is not None


def test_the_validation_label_budget_is_a_fixed_nested_subset(real_data_root) -> None:
    from dmvae.config import DataConfig
    from dmvae.data import load_splits
    from dmvae.errors import UserError

    root = str(real_data_root("mnist"))

    def val(size, seed=0):
        config = DataConfig(name="mnist", root=root, train_size=100, val_labels=size)
        return load_splits(config, seed=seed, progress=lambda m: None, with_test=False).val

    small, large, whole = val(100), val(1000), val(None)
    assert (len(small), len(large), len(whole)) == (100, 1000, 10_000)
    images = {name: split.tensors["image"].flatten(1) for name, split in (("s", small), ("l", large))}
    inside = (images["s"].unsqueeze(1) == images["l"].unsqueeze(0)).all(-1).any(1)
    assert inside.all()  # 100 inside 1,000
    assert torch.equal(val(100, seed=3).tensors["label"], small.tensors["label"])  # not moved by the run seed
    assert len(set(small.tensors["label"].tolist())) == 10
    with pytest.raises(UserError, match="val_labels"):
        val(20_000)


def test_final_json_states_the_validation_label_budget(synthetic_splits) -> None:
    final = Trainer(tiny_config(train={"epochs": 1}), splits=synthetic_splits(n_eval=20), progress=None).fit()
    assert final["val_labels"] == 20


def test_final_json_states_the_hardware_its_numbers_depend_on(synthetic_splits) -> None:
    final = Trainer(tiny_config(train={"epochs": 1}), splits=synthetic_splits(n_eval=20), progress=None).fit()
    assert final["hardware"].endswith(f"(torch CPU kernels {torch.backends.cpu.get_cpu_capability()})")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():  # Linux: the CPU's model name as the kernel reports it
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        assert final["hardware"].startswith(names[0])


def test_tune_final_warns_when_a_final_seed_is_the_tuned_seed(tmp_path, capsys) -> None:
    from tune.final import prepare

    config = tmp_path / "best.yaml"
    tiny_config().with_overrides(["seed=0"]).save(config)
    prepare(config, [0, 1, 2], tmp_path / "final", [])
    assert "seed 0 is a data seed the config was tuned on" in capsys.readouterr().err
    prepare(config, [1, 2, 3], tmp_path / "final", [])
    assert "warning" not in capsys.readouterr().err
    # a study with data_seeds names them in the exported config's header (tune/results.py)
    header = "# exported by `dmvae tune export`: rank 1; tuned on data seeds 0 4\n"
    config.write_text(header + config.read_text())
    prepare(config, [1, 2, 3], tmp_path / "final-2", [])
    assert "warning" not in capsys.readouterr().err
    prepare(config, [3, 4, 5], tmp_path / "final-3", [])
    assert "seed 4 is a data seed the config was tuned on" in capsys.readouterr().err
