import json
import os

import pytest
from fasttrain.config import ConfigError, TrainConfig, config_from_argv
from fasttrain.rank.checks import check_hardware


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
        ("label_smoothing", 1.0, "a fraction below 1"),
        ("max_train_time_s", 0, "give seconds, or None"),
    ],
)
def test_bad_values_have_clear_messages(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_profile("smoke", **{field: value}).validate()


def test_the_whole_test_split_is_fashion_mnists():
    with pytest.raises(ConfigError, match="test_full=True measures the whole Fashion-MNIST test split"):
        TrainConfig.from_profile("smoke", data="synthetic", test_full=True).validate()
    TrainConfig.from_profile("smoke", test_full=True).validate()


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
    with pytest.warns(UserWarning, match="16-mixed' on a CPU runs, but slowly.*Reference figure, for bf16: .*30 x"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="16-mixed"))


def test_bf16_on_a_cpu_without_bf16_units(monkeypatch):
    from fasttrain.rank import checks as run

    monkeypatch.setattr(run, "_cpu_has_bf16_units", lambda: False)
    with pytest.warns(UserWarning, match="without bf16 units .*Reference figure: .*30 x slower"):
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
    with pytest.raises(ConfigError, match="timeout='60': give the job's time limit in seconds as a number"):
        launch.run(profile="smoke", timeout="60")  # was a TypeError deep in the launcher
    with pytest.raises(ConfigError, match="num_nodes=2: launch.run starts the ranks of one machine"):
        launch.run(profile="smoke", accelerator="cpu", num_nodes=2)
    with pytest.raises(ConfigError, match="Did you mean 'max_steps'"):
        launch.run(profile="smoke", max_step=3)


# ---------------------------------------------------------------------- issue 17: small API gaps
def test_paths_are_accepted_and_stored_as_text(tmp_path):
    config = TrainConfig.from_profile("smoke", out_dir=tmp_path / "runs", data_dir=tmp_path / "data").validate()
    assert (config.out_dir, config.data_dir) == (str(tmp_path / "runs"), str(tmp_path / "data"))
    json.dumps(config.to_dict())  # the run folder's config.json and the record
    direct = TrainConfig(out_dir=tmp_path, data_dir=tmp_path)
    assert direct.out_dir == str(tmp_path) and json.dumps(direct.to_dict())


@pytest.mark.parametrize("field", ["global_batch_size", "max_steps", "devices", "lr"])
def test_a_boolean_is_not_a_number(field):
    with pytest.raises(ConfigError, match=f"{field}=True: a boolean is not a number"):
        TrainConfig.from_profile("smoke", **{field: True})
    with pytest.raises(ConfigError, match=f"{field}=True: a boolean is not a number"):
        TrainConfig(**{field: True}).validate()


@pytest.mark.parametrize("value", [float("inf"), float("nan"), "inf"])
def test_width_must_be_finite(value):
    with pytest.raises(ConfigError, match="width=.*: give a finite number.*1.0 is ResNet-50"):
        TrainConfig.from_profile("smoke", width=value).validate()


def test_lightnings_short_precision_names_mean_what_they_mean_in_lightning():
    assert TrainConfig.from_profile("smoke", precision="bf16").precision == "bf16-mixed"
    assert TrainConfig.from_profile("smoke", precision="16").precision == "16-mixed"
    assert TrainConfig.from_profile("smoke", precision=16).precision == "16-mixed"  # YAML's `precision: 16`
    assert TrainConfig.from_profile("smoke", precision="32").precision == "32"  # a valid name stays as it was
    with pytest.raises(ConfigError, match="'bf16' is Lightning's short name for 'bf16-mixed'"):
        TrainConfig(precision="bf16").validate()


def test_choices_are_case_insensitive():
    config = TrainConfig.from_profile("SMOKE", accelerator="GPU", optimizer="SGD")
    assert (config.profile, config.accelerator, config.optimizer) == ("smoke", "gpu", "sgd")
    with pytest.raises(ConfigError, match="Unknown accelerator 'GPU'. Did you mean 'gpu'"):
        TrainConfig(accelerator="GPU").validate()


def test_gpu_profile_without_a_gpu_refuses_unless_the_cost_is_accepted(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        ConfigError, match="profile='gpu' is the full-size run .* on the CPU .*hours.*accept_hours_on_cpu"
    ):
        TrainConfig.from_profile("gpu").validate()
    with pytest.raises(ConfigError, match="accept_hours_on_cpu=True"):
        config_from_argv(["--profile", "gpu"])
    assert TrainConfig.from_profile("gpu", accept_hours_on_cpu=True).validate().width == 1.0
    config, _ = config_from_argv(["--profile", "gpu", "--accept_hours_on_cpu", "true"])
    assert config.accept_hours_on_cpu


def test_gpu_profile_on_a_gpu_machine_told_to_use_the_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    TrainConfig.from_profile("gpu").validate()  # trains on the GPU: fine
    with pytest.raises(ConfigError, match="accelerator='cpu'"):
        TrainConfig.from_profile("gpu", accelerator="cpu").validate()


def test_to_dict_of_an_unchanged_config_is_what_it_was():
    """The run folder's name hashes to_dict(): a field added with a default must not rename every run folder."""
    import hashlib

    values = TrainConfig.from_profile("smoke", accelerator="cpu").to_dict()
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
    assert digest == "6b7925ad6cb83a31"  # to_dict() before issue 17
    accepted = TrainConfig.from_profile("smoke", accelerator="cpu", accept_hours_on_cpu=True)
    assert accepted.to_dict()["accept_hours_on_cpu"] is True
    assert (
        TrainConfig.from_dict(accepted.to_dict()) == accepted
        and TrainConfig.from_dict(values).accept_hours_on_cpu is False
    )


@pytest.mark.parametrize("width", [0.125, 0.5, 1.0, 1.7])
def test_parameter_count_without_building_the_model(width):
    from fasttrain import config_checks
    from fasttrain.rank.models import count_parameters, resnet50

    for classes, channels, small in ((10, 1, True), (1000, 3, False)):
        model = resnet50(classes, channels, width, small)
        assert config_checks.resnet50_parameters(classes, channels, width, small) == count_parameters(model)


def test_a_width_that_cannot_fit_in_memory_is_refused_with_the_estimate(monkeypatch):
    from fasttrain import config_checks

    monkeypatch.setattr(config_checks, "available_memory", lambda on_gpu: (16 * 2**30, "16.0 GiB available"))
    with pytest.raises(
        ConfigError, match=r"width=40.0: ResNet-50 .* [\d,]+ parameters.* at least [\d.]+ GiB .*16.0 GiB"
    ):
        TrainConfig.from_profile("smoke", accelerator="cpu", width=40).validate()
    TrainConfig.from_profile("smoke", accelerator="cpu", width=2).validate()
    with pytest.raises(ConfigError, match="2 ranks"):
        TrainConfig.from_profile("smoke", accelerator="cpu", width=9, devices=2).validate()


def test_a_record_folder_that_cannot_be_written_is_found_before_training(tmp_path):
    """From the shell: --record in a read-only folder is an error at once, not after the training."""
    import subprocess
    import sys

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores the mode bits: a file where the folder should be, then
        locked.chmod(0o700)
        locked.rmdir()
        locked.write_text("")
    command = [
        sys.executable,
        "-m",
        "fasttrain.run",
        "--profile",
        "smoke",
        "--accelerator",
        "cpu",
        "--checkpoint_every_steps",
        "0",
    ]
    done = subprocess.run([*command, "--record", str(locked / "r.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot write the record" in done.stderr and "step 1" not in done.stdout


def test_the_launchers_check_warns_once_without_printing(capsys):
    """In a notebook the launcher's warning shows once; the job's own copy goes to its log and progress bar."""
    with pytest.warns(UserWarning, match="16-mixed"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="16-mixed"), port=False)
    assert "[fasttrain] warning" not in capsys.readouterr().out
    with pytest.warns(UserWarning, match="16-mixed"):
        check_hardware(TrainConfig.from_profile("smoke", accelerator="cpu", precision="16-mixed"))
    assert "[fasttrain] warning" in capsys.readouterr().out
