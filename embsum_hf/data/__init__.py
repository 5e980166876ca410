"""Data layer: raw files in, `datasets.Dataset` out (no tensors, no tokenizers).

Every loader returns a `RecommendationData` (an items table and an impressions table with most-recent-first,
leak-free histories); `build_training_rows` and `sample_negatives` turn impressions into training examples. The
loaders' file reader is public for code that reads a user's file outside a loader: `iter_records` (CSV/TSV/JSON
lines/parquet or a `datasets.Dataset`, errors naming `file:line`), `iter_fields`, `require_columns`.
"""

from ._io import iter_fields, iter_records, require_columns
from .custom import load_custom
from .goodreads import GENERIC_SHELVES, load_goodreads
from .impression_files import load_impressions
from .impressions import Interaction, build_impressions, rating_to_label
from .mind import download_mind, load_mind
from .movielens import load_movielens
from .rows import TRAINING_FEATURES, build_training_rows, load_summaries, sample_negatives
from .saved import load_data
from .schema import (
    DOMAIN_TEXT_FIELDS,
    IMPRESSION_FEATURES,
    SAVED_DATA_NAME,
    UNLABELED,
    DataFormatError,
    RecommendationData,
)
from .splits import split_by_time, split_dev_test
from .synthetic import make_synthetic_mind
from .users import user_histories

__all__ = [
    "DOMAIN_TEXT_FIELDS",
    "GENERIC_SHELVES",
    "IMPRESSION_FEATURES",
    "SAVED_DATA_NAME",
    "TRAINING_FEATURES",
    "UNLABELED",
    "DataFormatError",
    "Interaction",
    "RecommendationData",
    "build_impressions",
    "build_training_rows",
    "download_mind",
    "iter_fields",
    "iter_records",
    "load_custom",
    "load_data",
    "load_goodreads",
    "load_impressions",
    "load_mind",
    "load_movielens",
    "load_summaries",
    "make_synthetic_mind",
    "rating_to_label",
    "require_columns",
    "sample_negatives",
    "split_by_time",
    "split_dev_test",
    "user_histories",
]
