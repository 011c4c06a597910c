"""fitlab: the three ways Keras trains a network, on Flowers-17 served as CSV.

The data flows through one module per step (see DESIGN in the README)::

    data ─▶ csvrows ─▶ generators / tfdata ─▶ augment ─▶ models + optim + recipes
         ─▶ training / loop ─▶ live / evaluate

Public names are imported lazily, so ``import fitlab`` is quick and pulls in
TensorFlow only when a name that needs it is first used.

Examples
--------
>>> import fitlab
>>> fitlab.CLASS_NAMES[:3]
('daffodil', 'snowdrop', 'lilyvalley')
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    # config
    "Profile": "config",
    "get_profile": "config",
    "data_dir": "config",
    # data
    "CLASS_NAMES": "data",
    "DatasetError": "data",
    "Flowers17Files": "data",
    "class_of": "data",
    "make_synthetic_csv": "data",
    "prepare_flowers17": "data",
    # csvrows
    "CSVFormatError": "csvrows",
    "BadRowsWarning": "csvrows",
    "parse_row": "csvrows",
    "load_csv": "csvrows",
    "classes_from_csv": "csvrows",
    # meter
    "InputMeter": "meter",
    # generators
    "csv_image_generator": "generators",
    "CSVSequence": "generators",
    # tfdata
    "csv_dataset": "tfdata",
    # augment
    "TUTORIAL_AUGMENTATION": "augment",
    "make_augmentation": "augment",
    "preview_augmentation": "augment",
    # models
    "MiniVGGNet": "models",
    # optim, recipes
    "legacy_sgd": "optim",
    "RECIPES": "recipes",
    "make_recipe": "recipes",
    # training
    "train_on_batches": "training",
    "train_tutorial": "training",
    "ResumableCheckpoint": "training",
    "resume_from": "training",
    # loop
    "CompiledLoop": "loop",
    # evaluate
    "predict_all": "evaluate",
    "report": "evaluate",
    "plot_confusion": "evaluate",
    # compat
    "fit_generator": "compat",
    "evaluate_generator": "compat",
    "predict_generator": "compat",
    "enable_legacy_methods": "compat",
    "legacy_history": "compat",
    "SGD": "compat",
    "ImageDataGenerator": "compat",
    # live
    "LivePlot": "live",
    "plot_history": "live",
    "plot_runs": "live",
}

_SUBMODULES = (
    "augment", "bench", "cli", "compat", "config", "csvrows", "data", "evaluate",
    "exercises", "generators", "live", "loop", "meter", "models", "optim", "recipes",
    "tfdata", "training",
)  # fmt: skip

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"fitlab.{_PUBLIC[name]}"), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"fitlab.{name}")
    raise AttributeError(f"module 'fitlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC) | set(_SUBMODULES))
