"""RandomItem: every user is shown a uniformly random ranking of the catalog, seeded (a reference row)."""

import logging

import torch

from recbole_gen.model.abstract_recommender import ReferenceRecommender
from recbole_gen.model.sampling import row_uniforms

logger = logging.getLogger(__name__)
# Users hashed per call: row_uniforms' uint64 temporaries then stay in cache (7x faster than a 4096-user batch).
HASHED_ELEMENTS = 1 << 19


class RandomItem(ReferenceRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.seed = config["seed"]

    def full_sort_predict(self, interaction):
        # One fixed random score per (user, item), hashed from (seed, user, item) when asked for: a user's
        # ranking depends on neither the batch nor the evaluation order, and no user x item table is kept.
        users = interaction[self.USER_ID]
        rows = max(1, HASHED_ELEMENTS // self.n_items)
        return torch.cat([row_uniforms(self.seed, users[start : start + rows].cpu(), 1, self.n_items)
                          for start in range(0, len(users), rows)]).to(users.device)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Checkpoints from before the scores were hashed hold them as a ``scores`` (user x item) buffer: it
        is dropped with a warning, since the hashed scores rank differently than that run did."""
        state_dict = dict(state_dict)
        if state_dict.pop("scores", None) is not None:
            logger.warning("RandomItem: this checkpoint holds a stored user x item 'scores' table (recbole_gen before "
                           "hashed scores); it is ignored and scores are hashed from (seed, user, item), so its random "
                           "ranking, and its metrics, differ from the run that saved it")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
