"""fitlab: the three ways Keras trains a network, on Flowers-17 served as CSV.

The package's folders follow the data, each layer importing only those
before it (``docs/architecture.md``; ``tests/test_layers.py`` checks it)::

    config, files ─▶ data ─▶ pipelines ─▶ augment, models, optim, recipes
      ─▶ engine ─▶ loops, callbacks, evaluate ─▶ compat ─▶ tutorial, exercises, bench ─▶ cli

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

from fitlab.quiet import silence_tensorflow_startup

__version__ = "0.1.0"

silence_tensorflow_startup()  # before anything imports TensorFlow: see fitlab/quiet.py

# public name -> module that defines it, in the order data flows through them
_PUBLIC = {
    # config
    "Profile": "config",
    "get_profile": "config",
    "data_dir": "config",
    "METHODS": "config",
    "RECIPES": "config",
    "show_versions": "machine",
    # data
    "CLASS_NAMES": "data.flowers17",
    "DatasetError": "data.flowers17",
    "Flowers17Files": "data.flowers17",
    "class_of": "data.flowers17",
    "make_synthetic_csv": "data.flowers17",
    "prepare_flowers17": "data.flowers17",
    "CSVFormatError": "data.csvrows",
    "BadRowsWarning": "data.csvrows",
    "parse_row": "data.csvrows",
    "load_csv": "data.csvrows",
    "classes_from_csv": "data.labels",
    "carve_validation": "data.holdout",
    # pipelines
    "InputMeter": "pipelines.meter",
    "csv_image_generator": "pipelines.generator",
    "CSVSequence": "pipelines.sequence",
    "csv_dataset": "pipelines.tfdata",
    # augmentation, model, optimizer, recipes
    "TUTORIAL_AUGMENTATION": "augment",
    "make_augmentation": "augment",
    "preview_augmentation": "augment",
    "MiniVGGNet": "models",
    "TinyNet": "models",
    "legacy_sgd": "optim",
    "make_recipe": "recipes",
    "Recipe": "recipes",
    "RECIPE_SETTINGS": "recipes",
    "make_recipe_augmentation": "recipes",
    # loops
    "train_on_batches": "loops.on_batch",
    "CompiledLoop": "loops.compiled",
    # callbacks, plots, evaluation
    "LivePlot": "callbacks.live",
    "ResumableCheckpoint": "callbacks.checkpoint",
    "resume_from": "callbacks.checkpoint",
    "plot_history": "plots",
    "plot_runs": "plots",
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
    # the tutorial's train.py, and several processes training as one
    "train_tutorial": "tutorial",
    "time_in_rounds": "bench.rounds",
    "RoundTimes": "bench.rounds",
    "free_ports": "cluster",
    "tf_config": "cluster",
}

_SUBMODULES = (
    "augment", "bench", "callbacks", "cli", "compat", "config", "data", "engine", "evaluate",
    "exercises", "files", "loops", "machine", "models", "optim", "pipelines", "plots", "recipes",
    "tutorial",
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
