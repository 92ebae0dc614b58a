"""Base classes of recbole_gen models."""

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType


class ReferenceRecommender(SequentialRecommender):
    """A fixed scoring rule over the catalog; trainers skip training it (it has no parameters)."""

    input_type = InputType.POINTWISE

    def calculate_loss(self, interaction):
        raise NotImplementedError(f"{type(self).__name__} is a reference rule with nothing to train")

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)

    def full_sort_predict(self, interaction):
        raise NotImplementedError

    def popularity(self, dataset):
        """Training-split interaction count of every item, as a float tensor (row = internal item id)."""
        counts = torch.bincount(dataset.inter_feat[self.ITEM_ID], minlength=self.n_items).float()
        counts[0] = 0
        return counts
