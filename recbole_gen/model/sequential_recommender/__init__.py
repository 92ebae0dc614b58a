"""recbole_gen's sequential models; ``recbole_gen.utils.get_model`` finds them here by name."""

from recbole_gen.model.sequential_recommender.genrec import GenRec
from recbole_gen.model.sequential_recommender.lastitem import LastItem
from recbole_gen.model.sequential_recommender.popitem import PopItem
from recbole_gen.model.sequential_recommender.randomitem import RandomItem
from recbole_gen.model.sequential_recommender.targetitem import TargetItem

__all__ = ["GenRec", "LastItem", "PopItem", "RandomItem", "TargetItem"]
