"""RecBole's Collector, extended with what the generative metrics need.

For every evaluated user (one row of the evaluation batch) it records:

- ``gen.shown`` ``(U, k, d)``: embeddings of the k items the model puts in front of the user. A
  trainer that shows something else than the top-1 catalog item (GenRec's generated images, k samples
  each) passes their embeddings on the batch's interaction, in the field :data:`SHOWN_FIELD`;
  otherwise the shown item is the top-1 ranked catalog item (k = 1).
- ``gen.code_share`` ``(U, k)`` float: the largest share of each shown item's image codes that equal, position
  by position, one catalog item's (a trainer that generates passes it in :data:`CODE_SHARE_FIELD`; 1 is an
  exact copy, and a catalog item shown by a ranking model is one).
- ``gen.target`` ``(M, 2)``: (user row, item) pairs of the ground-truth items: the next item for
  sequential models, every held-out item of the user for general models.
- ``gen.history`` ``(H, 2)``: (user row, item) pairs of the user's history (the item sequence of a
  sequential model, or the training items a trainer puts on the interaction in the same field).

``gen.catalog`` holds every item's embedding and ``gen.has_content`` which items have real content
(not a placeholder), both set once per run.

In a distributed run each process evaluates its share of the users; the generative metrics are not
means over users (FD, Diversity, PersonalLift), so every process gathers what all processes collected,
in the evaluated data's row order and each user once (:func:`merge_users`), before they are computed.
"""

import torch
import torch.distributed
from recbole.evaluator import Collector

from recbole_gen.compat import data_struct_to_cpu

SHOWN_FIELD, CODE_SHARE_FIELD = "gen_shown", "gen_code_share"
CATALOG_KEY, HAS_CONTENT_KEY = "gen.catalog", "gen.has_content"
PER_BATCH_KEYS = ("gen.shown", "gen.code_share", "gen.target", "gen.history")
GENERATIVE_KEYS = (CATALOG_KEY, HAS_CONTENT_KEY) + PER_BATCH_KEYS
_RECBOLE_BATCH_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")


def pad_pairs(rows, values, n_rows):
    """``(n_rows, L)`` long tensor: row r holds the ``values`` paired with r, in order, 0-padded."""
    counts = torch.bincount(rows, minlength=n_rows)
    padded = torch.zeros(n_rows, int(counts.max()) if len(rows) else 0, dtype=torch.long)
    order = torch.argsort(rows, stable=True)
    rows, values = rows[order], values[order]
    starts = torch.cumsum(counts, 0) - counts
    padded[rows, torch.arange(len(rows)) - starts[rows]] = values
    return padded


def _pairs(padded, offset):
    """(row + offset, value) pairs of the non-zero entries of a 0-padded ``(B, L)`` tensor."""
    rows, columns = torch.nonzero(padded, as_tuple=True)
    return torch.stack([rows + offset, padded[rows, columns]], dim=1)


def gather_objects(value):
    """``value`` of every process of the distributed run, in rank order (pickled between the run's own processes)."""
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def first_occurrences(rows_per_process):
    """For each process, which of its users to keep so that every row of the evaluated data counts once:
    RecBole's DistributedSampler pads the processes' shares to one length with the first rows again."""
    seen, keep = set(), []
    for rows in rows_per_process:
        mask = []
        for row in rows.tolist():
            mask.append(row not in seen)
            seen.add(row)
        keep.append(torch.tensor(mask, dtype=torch.bool))
    return keep


def gather_per_user(rows, value):
    """Every process's ``(value, keep)``, in rank order: ``value`` holds something per user of that process's
    ``rows`` (the evaluated data's rows), and ``keep`` ``(U,)`` marks the users counted there (each row once)."""
    parts = gather_objects((rows, value))
    return list(zip([part for _, part in parts], first_occurrences([part_rows for part_rows, _ in parts])))


def _global_pairs(pairs, rows, keep):
    pairs = pairs[keep[pairs[:, 0]]]
    return torch.stack([rows[pairs[:, 0]], pairs[:, 1]], dim=1)


def merge_users(parts):
    """Every process's collected users as one process would have collected them. ``parts``: per process,
    ``rows`` ``(U,)`` (the evaluated data's row of each of its users, in collection order) and its
    :data:`PER_BATCH_KEYS` (CPU tensors, pairs indexed by its own users). Returns those keys with the users
    in row order, each once."""
    keep = first_occurrences([part["rows"] for part in parts])
    rows = torch.cat([part["rows"][users] for part, users in zip(parts, keep)])
    if not torch.equal(rows.sort().values, torch.arange(len(rows))):
        raise ValueError(f"the processes evaluated rows {sorted(set(rows.tolist()))}, not every row 0..{len(rows) - 1} once")
    order = torch.argsort(rows)
    merged = {key: torch.cat([part[key][users] for part, users in zip(parts, keep)])[order] for key in ("gen.shown", "gen.code_share")}
    for key in ("gen.target", "gen.history"):
        pairs = torch.cat([_global_pairs(part[key], part["rows"], users) for part, users in zip(parts, keep)])
        merged[key] = pairs[torch.argsort(pairs[:, 0], stable=True)]  # by user, each user's pairs in their order
    return merged


class GenerativeCollector(Collector):
    def __init__(self, config):
        super().__init__(config)
        self.history_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
        self._n_users = 0  # users collected so far in this evaluation
        # Set by the trainer before a distributed evaluation: the evaluated data's row (user) of each user this
        # process is dealt, in order (the DistributedSampler's indices); None in one process.
        self.eval_rows = None

    @property
    def needs_catalog(self):
        return any(self.register.need(key) for key in GENERATIVE_KEYS)

    @property
    def has_catalog(self):
        return CATALOG_KEY in self.data_struct

    def set_catalog(self, catalog_embeddings, has_content):
        """Embeddings of every item (row = internal item id) and which items have real content, shared by
        all evaluations of a run."""
        self.data_struct.set(CATALOG_KEY, catalog_embeddings.to(self.device))
        self.data_struct.set(HAS_CONTENT_KEY, has_content.to(self.device))

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        if not self.needs_catalog:
            return
        catalog = self.data_struct.get(CATALOG_KEY)
        n_users = len(scores_tensor)
        if SHOWN_FIELD in interaction:
            shown = interaction[SHOWN_FIELD]
            code_share = interaction[CODE_SHARE_FIELD] if CODE_SHARE_FIELD in interaction else torch.zeros(shown.shape[:2])
        else:
            shown = catalog[scores_tensor.argmax(dim=-1).to(catalog.device)].unsqueeze(1)
            code_share = torch.ones(n_users, 1)
        # positive_u / positive_i come from the dataloader on the CPU; scores may be on the GPU.
        targets = torch.stack([positive_u.cpu() + self._n_users, positive_i.cpu()], dim=1)
        history = interaction[self.history_field].cpu() if self.history_field in interaction else torch.zeros(n_users, 0, dtype=torch.long)
        self.data_struct.update_tensor("gen.shown", shown.to(catalog.device))
        self.data_struct.update_tensor("gen.code_share", code_share.to(catalog.device))
        self.data_struct.update_tensor("gen.target", targets.to(self.device))
        self.data_struct.update_tensor("gen.history", _pairs(history, self._n_users).to(self.device))
        self._n_users += n_users

    def get_data_struct(self):
        returned_struct = data_struct_to_cpu(self.data_struct)
        if self.eval_rows is not None and self.needs_catalog:
            if self._n_users != len(self.eval_rows):
                raise RuntimeError(f"collected {self._n_users} users but this process was dealt {len(self.eval_rows)}")
            local = {"rows": self.eval_rows, **{key: returned_struct.get(key) for key in PER_BATCH_KEYS}}
            for key, value in merge_users(gather_objects(local)).items():
                returned_struct.set(key, value)
        for key in _RECBOLE_BATCH_KEYS + PER_BATCH_KEYS:
            if key in self.data_struct:
                del self.data_struct[key]
        self._n_users = 0
        return returned_struct
