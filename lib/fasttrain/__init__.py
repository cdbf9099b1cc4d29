"""fasttrain: the library behind the course on making deep-learning training fast.

By the process the code runs in: `rank/` inside each rank of a training job (the job, model, data,
LightningModule, optimizers, measurements), `launch/` in the notebook's kernel (starts a job, returns
its record), `chapters/chNN_*` each chapter's own analyses. Shared: `config` (what to run), `devices`
(what this machine offers), `results` (records), `report/` (tables, spread statistics, figures),
`references` (published figures quoted with their sources), `paths`.
"""

from fasttrain.config import ConfigError, TrainConfig

__all__ = ["ConfigError", "TrainConfig"]
__version__ = "0.1.0"
