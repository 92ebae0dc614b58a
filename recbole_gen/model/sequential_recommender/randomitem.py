"""RandomItem: every user is shown a uniformly random ranking of the catalog, seeded (a reference row)."""

import torch

from recbole_gen.model.abstract_recommender import ReferenceRecommender


class RandomItem(ReferenceRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.generator = torch.Generator().manual_seed(config["seed"])

    def full_sort_predict(self, interaction):
        scores = torch.rand(len(interaction), self.n_items, generator=self.generator)
        return scores.to(interaction[self.ITEM_SEQ].device)
