"""RecBole's Collector, extended with what the generative metrics need.

For every evaluated user it records the embedding of the item the model puts in front of them
(``gen.emb``: the top-1 ranked catalog item, or the generated item a trainer passes to
:meth:`GenerativeCollector.set_shown` before the batch is collected), the ground-truth next item
(``gen.target``) and the history (``gen.history``); ``gen.catalog`` holds the catalog's embeddings,
set once per run.
"""

import torch
from recbole.evaluator import Collector

from recbole_gen.compat import data_struct_to_cpu

CATALOG_KEY = "gen.catalog"
PER_BATCH_KEYS = ("gen.emb", "gen.target", "gen.history")
GENERATIVE_KEYS = (CATALOG_KEY,) + PER_BATCH_KEYS
_RECBOLE_BATCH_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")


class GenerativeCollector(Collector):
    def __init__(self, config):
        super().__init__(config)
        self.history_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
        self._shown = None  # set_shown's embeddings for the next collected batch

    @property
    def needs_catalog(self):
        return any(self.register.need(key) for key in GENERATIVE_KEYS)

    @property
    def has_catalog(self):
        return CATALOG_KEY in self.data_struct

    def set_catalog(self, catalog_embeddings):
        """Embeddings of every item (row = internal item id), shared by all evaluations of a run."""
        self.data_struct.set(CATALOG_KEY, catalog_embeddings.to(self.device))

    def set_shown(self, embeddings):
        """The next batch's shown items are these embeddings (e.g. of generated images), not the top-1."""
        self._shown = embeddings

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        shown, self._shown = self._shown, None
        if not self.needs_catalog:
            return
        catalog = self.data_struct.get(CATALOG_KEY)
        if shown is None:
            shown = catalog[scores_tensor.argmax(dim=-1).to(catalog.device)]
        # Sequential evaluation has exactly one positive (the next item) per row.
        # positive_u / positive_i come from the dataloader on the CPU; scores may be on the GPU.
        target = torch.zeros(len(scores_tensor), dtype=torch.long)
        target[positive_u.cpu()] = positive_i.cpu()
        if self.history_field in interaction:
            history = interaction[self.history_field]
        else:
            history = torch.zeros(len(scores_tensor), 1, dtype=torch.long)
        self.data_struct.update_tensor("gen.emb", shown.to(catalog.device))
        self.data_struct.update_tensor("gen.target", target.to(self.device))
        self.data_struct.update_tensor("gen.history", history.to(self.device))

    def get_data_struct(self):
        returned_struct = data_struct_to_cpu(self.data_struct)
        for key in _RECBOLE_BATCH_KEYS + PER_BATCH_KEYS:
            if key in self.data_struct:
                del self.data_struct[key]
        return returned_struct
