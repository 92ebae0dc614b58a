"""PopItem: every user is shown the most popular items of the training split (a reference row)."""

from recbole_gen.model.abstract_recommender import ReferenceRecommender


class PopItem(ReferenceRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.register_buffer("item_popularity", self.popularity(dataset))

    def full_sort_predict(self, interaction):
        return self.item_popularity.unsqueeze(0).expand(len(interaction), -1).clone()
