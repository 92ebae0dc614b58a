"""TargetItem: every user is shown their own ground-truth next item (a reference row that cheats).

It reads the answer, so no model can be fairly compared with it; it shows what each metric gives a
perfect shown item (TargetSim 1, FD at its floor, Recall@1 1), next to RandomItem, PopItem and
LastItem, which show what chance, popularity and repetition earn.
"""

import torch

from recbole_gen.model.abstract_recommender import ReferenceRecommender


class TargetItem(ReferenceRecommender):
    def full_sort_predict(self, interaction):
        target = interaction[self.ITEM_ID]
        scores = torch.zeros(len(target), self.n_items, device=target.device)
        scores[torch.arange(len(target), device=target.device), target] = 1.0
        return scores
