"""Pure analysis (no Keras): similarity, clustering under the budget, refine."""

from keras_swn.analysis.clustering import SearchResult
from keras_swn.analysis.clustering import attach_members
from keras_swn.analysis.clustering import cluster_bin
from keras_swn.analysis.clustering import search_groups
from keras_swn.analysis.grouping_config import GroupingConfig
from keras_swn.analysis.refine import RefineResult
from keras_swn.analysis.refine import refine_partition
from keras_swn.analysis.similarity import cropped_cosine
from keras_swn.analysis.similarity import similarity_matrix
from keras_swn.analysis.similarity import to_oihw

__all__ = [
    "GroupingConfig",
    "RefineResult",
    "SearchResult",
    "attach_members",
    "cluster_bin",
    "cropped_cosine",
    "refine_partition",
    "search_groups",
    "similarity_matrix",
    "to_oihw",
]
