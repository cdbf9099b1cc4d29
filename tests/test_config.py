import json

import pytest
from fasttrain.config import ConfigError, TrainConfig, config_from_argv
from fasttrain.rank.job import check_hardware


def test_profiles_give_defaults_and_overrides_win():
    config = TrainConfig.from_profile("smoke", lr=0.3)
    assert config.profile == "smoke" and config.width == 0.125 and config.lr == 0.3


def test_global_batch_must_split_over_ranks():
    with pytest.raises(ConfigError, match="does not split evenly over 3 rank"):
        TrainConfig.from_profile("smoke", devices=3, global_batch_size=64).validate()


def test_unknown_parameter_suggests_the_right_one():
    with pytest.raises(ConfigError, match="Did you mean 'global_batch_size'"):
        TrainConfig.from_profile("smoke", global_batchsize=64)


def test_unknown_profile_lists_the_choices():
    with pytest.raises(ConfigError, match="Choose one of: auto, smoke, cpu, gpu"):
        TrainConfig.from_profile("fast")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("devices", 0, "use 1 or more devices"),
        ("precision", "fp16", "Unknown precision 'fp16'"),
        ("optimizer", "lamb", "Unknown optimizer"),
        ("max_steps", 0, "at least one step"),
        ("target_accuracy", 85, "give a fraction"),
        ("train_samples", 32, "fewer than one global batch of 64"),
        ("val_every_steps", -1, "validate once, at the end"),
        ("checkpoint_every_steps", -5, "use 0 \\(no checkpoints\\)"),
        ("process_group_timeout_s", 0, "1 second or more"),
    ],
)
def test_bad_values_have_clear_messages(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_profile("smoke", **{field: value}).validate()


def test_cli_flags_and_config_files(tmp_path):
    config, record = config_from_argv(
        ["--profile", "smoke", "--lr", "0.2", "--devices", "2", "--sync_batchnorm", "true", "--record", "r.json"]
    )
    assert (config.lr, config.devices, config.sync_batchnorm, record) == (0.2, 2, True, "r.json")

    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text("profile: smoke\nlr: 0.05\noptimizer: lars\n")
    config, _ = config_from_argv(["--config", str(yaml_file), "--lr", "0.5"])
    assert (config.profile, config.optimizer, config.lr) == ("smoke", "lars", 0.5)

    json_file = tmp_path / "job.json"
    json_file.write_text(json.dumps({"profile": "smoke", "global_batch_size": 128}))
    assert config_from_argv(["--config", str(json_file)])[0].global_batch_size == 128


def test_cli_rejects_unknown_flags_and_bad_types():
    with pytest.raises(ConfigError, match="Did you mean '--max_steps'"):
        config_from_argv(["--max_step", "3"])
    with pytest.raises(ConfigError, match="devices='two' is not a valid int"):
        config_from_argv(["--devices", "two"])


def test_linear_scaling_rule():
    config = TrainConfig.from_profile("smoke", lr=0.1, base_batch_size=256, global_batch_size=1024)
    assert config.effective_lr == pytest.approx(0.4)


def test_hardware_checks(monkeypatch):
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="gpu"))
    with pytest.raises(ConfigError, match="each rank needs at least one core"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", devices=4096, global_batch_size=4096))
    for var in ("NODE_RANK", "GROUP_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="needs a cluster environment"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", num_nodes=2))


def test_precision_the_cpu_cannot_do():
    with pytest.raises(ConfigError, match="fp16 is a GPU format; on a CPU use 'bf16-mixed'"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="16-true"))
    with pytest.warns(UserWarning, match="16-mixed' on a CPU runs, but slowly.*Measured: .*30 x slower"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="16-mixed"))


def test_bf16_on_a_cpu_without_bf16_units(monkeypatch):
    from fasttrain.rank import job as run

    monkeypatch.setattr(run, "_cpu_has_bf16_units", lambda: False)
    with pytest.warns(UserWarning, match="without bf16 units .*Measured: .*30 x slower"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="bf16-mixed"))
    monkeypatch.setattr(run, "_cpu_has_bf16_units", lambda: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="bf16-mixed"))


def test_bf16_on_a_gpu_without_bf16_units(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100-SXM2-16GB")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.raises(ConfigError, match="V100-SXM2-16GB has no bf16 units .* Use '16-mixed'"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="gpu", precision="bf16-mixed"))
    check_hardware(TrainConfig.from_profile("smoke", accelerator="gpu", precision="16-mixed"))  # fine there
    with pytest.raises(ConfigError, match="this machine has 1 GPU"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="gpu", devices=2))


def test_master_port_already_in_use(monkeypatch):
    import socket

    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("MASTER_PORT", str(port))
        for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "TORCHELASTIC_RUN_ID"):
            monkeypatch.delenv(var, raising=False)
        with pytest.raises(ConfigError, match=f"MASTER_PORT={port} is already in use .* leave MASTER_PORT unset"):
            check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", devices=2))
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", devices=1))  # no DDP, no port
    check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", devices=2))  # free again


def test_launcher_arguments_are_checked():
    from fasttrain import launch

    with pytest.raises(ConfigError, match="show='quiet'"):
        launch.run(profile="smoke", show="quiet")
    with pytest.raises(ConfigError, match="timeout=0"):
        launch.run(profile="smoke", timeout=0)
    with pytest.raises(ConfigError, match="Did you mean 'max_steps'"):
        launch.run(profile="smoke", max_step=3)
