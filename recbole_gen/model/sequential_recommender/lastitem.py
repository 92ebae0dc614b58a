"""LastItem: every user is shown the last item of their history, then popular items (a reference row)."""

import torch

from recbole_gen.model.abstract_recommender import ReferenceRecommender


class LastItem(ReferenceRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        popularity = self.popularity(dataset)
        # Popularity in [0, 1) orders the rest of the list below the last item, which scores 1 + that.
        self.register_buffer("item_popularity", popularity / (popularity.max() + 1))

    def full_sort_predict(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        last_item = self.gather_indexes(item_seq.unsqueeze(-1), interaction[self.ITEM_SEQ_LEN] - 1).squeeze(-1)
        scores = self.item_popularity.unsqueeze(0).repeat(len(item_seq), 1)
        scores[torch.arange(len(item_seq), device=scores.device), last_item] += 1.0
        return scores
