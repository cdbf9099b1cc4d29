"""One training job's configuration: plain values, a profile for defaults, CLI and file overrides.

Precedence, lowest first: the dataclass defaults, the profile's values, a YAML/JSON file,
command-line flags (or keyword overrides from Python). `TrainConfig.validate()` turns every
mistake we have seen a newcomer make into a message that says what to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints


class ConfigError(ValueError):
    """A configuration value a training job cannot run with; the message says what to change."""


# What each profile means. `smoke` is what CI runs: seconds per job, still real data and real DDP.
# `cpu` is sized for a 2-core laptop-class machine; `gpu` is the honest full-size run.
_PROFILE_FIELDS = (
    "width",
    "global_batch_size",
    "max_steps",
    "val_every_steps",
    "train_samples",
    "val_samples",
    "timing_warmup_steps",
    "checkpoint_every_steps",
)
PROFILES: dict[str, dict[str, Any]] = {
    name: dict(zip(_PROFILE_FIELDS, values))
    for name, values in {
        "smoke": (0.125, 64, 30, 10, 8192, 1000, 3, 10),
        "cpu": (0.25, 64, 150, 50, None, 2000, 5, 50),
        "gpu": (1.0, 256, 1000, 200, None, None, 20, 200),
    }.items()
}
PROFILE_NAMES = ("auto", *PROFILES)

DATASETS = ("fashion_mnist", "synthetic", "imagefolder")
OPTIMIZERS = ("sgd", "lars", "adamw")
SCHEDULES = ("constant", "cosine", "linear")
COMM_HOOKS = ("timed", "bf16", "none", "noop")
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
STRATEGIES = ("auto", "ddp", "single")
# Lightning's short precision names and what Lightning makes of them ("bf16" is bf16-mixed, not bf16-true).
PRECISION_ALIASES = {"bf16": "bf16-mixed", "16": "16-mixed", "64": "64-true"}
# Fields whose value is one of a few names: matched case-insensitively ("GPU" is "gpu").
CHOICE_FIELDS = ("data", "optimizer", "schedule", "comm_hook", "precision", "accelerator", "strategy", "profile")
# Fields added after run folders were named by a hash of to_dict(): left out of it while at their default,
# so that an unchanged config keeps its run folder (and its record).
_OMITTED_AT_DEFAULT = {
    "accept_hours_on_cpu": False,
    "trace_steps": 0,
    "label_smoothing": 0.0,
    "max_train_time_s": None,
    "test_full": False,
}


def resolve_profile(profile: str) -> str:
    """`auto` means `gpu` where CUDA is usable, else `cpu`."""
    profile = profile.lower() if isinstance(profile, str) else profile
    if profile not in PROFILE_NAMES:
        raise ConfigError(_unknown("profile", profile, PROFILE_NAMES))
    if profile == "auto":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return profile


@dataclass
class TrainConfig:
    # Data: what the model learns from.
    data: str = "fashion_mnist"
    data_dir: str | None = None  # defaults: Debian's package path / ImageNet-style folder
    image_size: int = 28  # Fashion-MNIST is 28x28; ImageNet runs use 224
    in_channels: int = 1
    num_classes: int = 10
    train_samples: int | None = None  # a fixed subset of the training set (None: all of it)
    val_samples: int | None = None
    download: bool = True  # Fashion-MNIST: let torchvision fetch it when it is missing
    loader_workers: int = 4  # ImageFolder only; in-memory data sets need no workers
    # Model: ResNet-50's topology at a width factor.
    width: float = 1.0
    small_input: bool = True  # 3x3 stem without max-pool, for 28-64 pixel images
    channels_last: bool = False
    compile: bool = False
    sync_batchnorm: bool = False
    # Hardware: Lightning's own names.
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    precision: str = "32-true"
    strategy: str = "auto"  # auto: DDP when world_size > 1; "ddp" forces it on 1 rank
    threads_per_rank: int | None = None  # CPU: torch threads in each rank (None: cores / ranks)
    matmul_precision: str = "highest"  # "high" lets fp32 matmuls use TF32 on Ampere and newer
    loss_scale_growth_interval: int = 2000  # 16-mixed: clean steps before GradScaler doubles the scale
    # Optimisation.
    global_batch_size: int = 64  # over all ranks; each rank gets global / world_size
    optimizer: str = "sgd"
    lr: float = 0.1
    base_batch_size: int | None = None  # set it to apply the linear scaling rule: lr * B / base
    momentum: float = 0.9
    weight_decay: float = 5e-5
    nesterov: bool = False
    lars_eta: float = 0.001
    warmup_steps: int = 0
    schedule: str = "constant"
    max_steps: int = 100
    grad_accumulation: int = 1
    label_smoothing: float = 0.0  # training loss only: the target puts this mass evenly on every class
    max_train_time_s: float | None = None  # stop once the training steps (validation off the clock) took this long
    seed: int = 0
    # Measurement and validation.
    val_every_steps: int = 0  # 0: validate once, at the end
    target_accuracy: float | None = None  # stop once validation reaches it
    test_full: bool = False  # after training, also measure accuracy on the whole test split (record's "test")
    timing_warmup_steps: int = 5  # steps left out of the step-time statistics
    trace_steps: int = 0  # steps recorded by torch.profiler after the warm-up, one trace per rank (0: none)
    comm_hook: str = "timed"  # DDP gradient hook: timed fp32 all-reduce, bf16 compression,
    # none (DDP's own, untimed), noop (no exchange: timing only)
    bucket_cap_mb: float = 25.0
    measure_noise_scale: bool = False  # per-step |g|^2 of one rank's and the global batch (DDP only)
    static_graph: bool = False
    # Bookkeeping.
    profile: str = "cpu"
    name: str | None = None
    save_weights: bool = False  # rank 0 saves the final state_dict beside the record
    out_dir: str | None = None  # None: build/runs at the top of the course
    process_group_timeout_s: int = 300  # a rank stuck this long in a collective ends the job
    checkpoint_every_steps: int = 0  # save the job's state every N steps (0: never), off the step clock
    resume: bool = True  # a re-run continues from the job's last checkpoint, if it left one
    accept_hours_on_cpu: bool = False  # the gpu profile on a CPU takes hours: refused unless this says so
    extra: dict = field(default_factory=dict)  # free-form notes that travel into the record

    def __post_init__(self) -> None:
        for name in ("data_dir", "out_dir"):  # a pathlib.Path works, and the config stays JSON
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_profile(cls, profile: str = "auto", **overrides: Any) -> TrainConfig:
        resolved = resolve_profile(profile)
        values = dict(PROFILES[resolved])
        values.update(overrides)
        values["profile"] = resolved
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ConfigError("; ".join(_unknown("parameter", k, sorted(names)) for k in unknown))
        hints = get_type_hints(cls)
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> TrainConfig:
        values = load_config_file(path)
        profile = values.pop("profile", overrides.pop("profile", "cpu"))
        values.update(overrides)
        return cls.from_profile(profile, **values)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name, default in _OMITTED_AT_DEFAULT.items():
            if values[name] == default:
                del values[name]
        return values

    def replace(self, **changes: Any) -> TrainConfig:
        values = self.to_dict()
        values.update(changes)
        return TrainConfig.from_dict(values)

    # ------------------------------------------------------------------ derived values
    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def per_device_batch_size(self) -> int:
        return self.global_batch_size // (self.world_size * self.grad_accumulation)

    @property
    def on_gpu(self) -> bool:
        """Whether the job trains on CUDA devices (accelerator 'auto' decides by what is there)."""
        import torch

        return self.accelerator in ("gpu", "cuda") or (self.accelerator == "auto" and torch.cuda.is_available())

    @property
    def effective_lr(self) -> float:
        """The peak learning rate, after the linear scaling rule when base_batch_size is set."""
        if self.base_batch_size:
            return self.lr * self.global_batch_size / self.base_batch_size
        return self.lr

    def validate(self) -> TrainConfig:
        """Raise ConfigError, saying what to change, for the first value a job cannot run with."""
        from fasttrain.config_checks import check_config

        check_config(self)
        return self


def _unknown(what: str, value: Any, choices) -> str:
    lowered = {str(c).lower(): str(c) for c in choices}  # "GPU" is close to "gpu"
    close = difflib.get_close_matches(str(value).lower(), list(lowered), n=1)
    hint = f" Did you mean {lowered[close[0]]!r}?" if close else ""
    return f"Unknown {what} {value!r}.{hint} Choose one of: {', '.join(map(str, choices))}."


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Turn CLI strings and YAML values into the field's type, with a clear error."""
    text = str(hint)
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if name in CHOICE_FIELDS and isinstance(value, (str, int)) and not isinstance(value, bool):
        value = str(value).lower()  # YAML reads `precision: 16` as a number
        return PRECISION_ALIASES.get(value, value) if name == "precision" else value
    if isinstance(value, str) and value.lower() in ("none", "null") and "Optional" in text:
        return None
    if isinstance(value, bool) and "bool" not in text and ("int" in text or "float" in text):
        raise ConfigError(f"{name}={value!r}: a boolean is not a number; give a number.")  # True == 1 to Python
    try:
        if "bool" in text:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if "int" in text:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if "float" in text:
            return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int("inf")
        kind = re.sub(r"<class '(\w+)'>", r"\1", text).replace("typing.", "")
        raise ConfigError(f"{name}={value!r} is not a valid {kind}.") from None
    return value


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist.")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of parameter names to values.")
    return values


def build_parser() -> argparse.ArgumentParser:
    """`--name value` for every field, plus --config FILE and --record PATH."""
    parser = argparse.ArgumentParser(
        prog="python -m fasttrain.run",
        description="Train ResNet-50 with Lightning on any devices/nodes and write one result record.",
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    parser.add_argument("--config", help="YAML or JSON file of parameters (flags override it)")
    parser.add_argument("--record", help="where to write the result record (JSON)")
    for f in fields(TrainConfig):
        if f.name == "extra":
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        parser.add_argument(
            f"--{f.name}", dest=f.name, metavar=f.name.upper(), help=f"default {default!r} (or the profile's)"
        )
    return parser


def config_from_argv(argv: list[str] | None = None) -> tuple[TrainConfig, str | None]:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        names = [f"--{f.name}" for f in fields(TrainConfig)]
        flags = [u.split("=")[0] for u in unknown if u.startswith("--")]
        raise ConfigError("; ".join(_unknown("flag", f, names) for f in flags) or f"Cannot parse {unknown}")
    values = vars(args)
    record = values.pop("record", None)
    config_path = values.pop("config", None)
    if config_path:
        config = TrainConfig.from_file(config_path, **values)
    else:
        config = TrainConfig.from_profile(values.pop("profile", "cpu"), **values)
    return config.validate(), record
