"""Training property models and force fields (``alignn-ase train config.yaml`` or :func:`train`).

Modules: :mod:`.config` (the validated config), :mod:`.data` (dataset
readers), :mod:`.splits`, :mod:`.graphs` (graph cache and batching),
:mod:`.tasks` (losses, metrics, plots), :mod:`.trainer` (the loop).
"""

from .config import TrainConfig, config_from_dict, load_config
from .data import Record, read_dataset
from .trainer import TrainResult, evaluate_dataset, train

__all__ = ["Record", "TrainConfig", "TrainResult", "config_from_dict", "evaluate_dataset", "load_config", "read_dataset", "train"]
