"""The data layer: the Flowers-17 archive turned into the tutorial's CSVs, and read back.

``flowers17``
    ``17flowers.tgz`` → ``flowers17_training.csv`` / ``flowers17_testing.csv``
    (:func:`prepare_flowers17`), and small synthetic CSVs for tests.
``csvrows``
    The strict, vectorised row parser; :func:`load_csv` reads a whole file
    into arrays (what ``fit`` trains on).
``rowindex``
    A byte-offset index of a CSV's rows, for random access.
``holdout``
    A stratified validation split carved from a training CSV (:func:`carve_validation`).
``labels``
    Class names → class indices, the one encoder every reader uses.

Examples
--------
>>> from fitlab.data import CLASS_NAMES
>>> len(CLASS_NAMES)
17
"""

from fitlab.data.csvrows import (
    BadRowsWarning,
    CSVFormatError,
    count_rows,
    load_csv,
    parse_row,
)
from fitlab.data.flowers17 import (
    CLASS_NAMES,
    DatasetError,
    Flowers17Files,
    class_of,
    make_synthetic_csv,
    prepare_flowers17,
)
from fitlab.data.holdout import carve_validation
from fitlab.data.labels import classes_from_csv, encode_labels, label_codes

__all__ = [
    "CLASS_NAMES",
    "BadRowsWarning",
    "CSVFormatError",
    "DatasetError",
    "Flowers17Files",
    "carve_validation",
    "class_of",
    "classes_from_csv",
    "count_rows",
    "encode_labels",
    "label_codes",
    "load_csv",
    "make_synthetic_csv",
    "parse_row",
    "prepare_flowers17",
]
