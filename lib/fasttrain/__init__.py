"""fasttrain: the library behind the course on making deep-learning training fast.

One job per module: `config` (what to run), `models` (ResNet-50), `data` (DataModules),
`module` (the LightningModule), `optim` (LARS, schedules), `measure` (step times, communication),
`run` (one training job -> a result record), `launch` (what notebooks call), `results` (records),
`plots` (figures), `references` (published figures quoted with their sources).
"""

from fasttrain.config import ConfigError, TrainConfig

__all__ = ["ConfigError", "TrainConfig"]
__version__ = "0.1.0"
