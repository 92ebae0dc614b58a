"""RandomItem: every user is shown a uniformly random ranking of the catalog, seeded (a reference row)."""

import torch

from recbole_gen.model.abstract_recommender import ReferenceRecommender


class RandomItem(ReferenceRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        # One fixed random score per (user, item): a user's ranking does not depend on evaluation order.
        generator = torch.Generator().manual_seed(config["seed"])
        self.register_buffer("scores", torch.rand(dataset.user_num, self.n_items, generator=generator))

    def full_sort_predict(self, interaction):
        return self.scores[interaction[self.USER_ID]]
