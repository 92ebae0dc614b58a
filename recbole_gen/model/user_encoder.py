"""The user encoder: a RecBole sequential model, used for its user embedding.

Only the models in ``USER_ENCODERS`` are accepted: for them ``user_embedding`` is the vector the model
scores the next item with (``full_sort_predict`` = ``user @ item_embedding.weight.T``, plus BERT4Rec's
per-item bias) and ``recommendation_loss`` is the model's own ``calculate_loss``; the other sequential
models, and why, are in ``REFUSED_USER_ENCODERS`` (tests/model/test_user_encoder.py checks both).
Its hyper-parameters come from its own YAML file, merged under the outer model's by
:class:`recbole_gen.config.Config`. It keeps its own recommendation loss, so it can be trained
jointly, and it can start from a checkpoint written by ``run_recbole_gen``.
"""

import inspect

from recbole_gen.compat import load_checkpoint
from recbole_gen.utils import get_model

# The sequential models that work as the user encoder (the module docstring says what that means,
# tests/model/test_user_encoder.py checks it); REFUSED_USER_ENCODERS says why each other one does not.
USER_ENCODERS = (
    "BERT4Rec", "FDSA", "FEARec", "GCSAN", "GRU4Rec", "GRU4RecF", "LightSANs",
    "NARM", "NextItNet", "SASRec", "SASRecF", "SINE", "SRGNN", "STAMP",
)

# Those whose CE loss is the cross-entropy of ``user @ item_embedding.T`` and nothing else, so
# ``recommendation_loss`` can reuse ``user``. GCSAN and NextItNet add regularisers, FEARec contrastive
# terms (with ``contrast`` set), BERT4Rec scores masked positions: those call ``calculate_loss``.
_LOSS_FROM_USER = ("FDSA", "GRU4Rec", "GRU4RecF", "LightSANs", "NARM", "SASRec", "SASRecF", "SINE", "SRGNN", "STAMP")

_NEEDS_USER = "needs the user id, which a user embedding computed from the item history does not have"
REFUSED_USER_ENCODERS = {
    "Caser": _NEEDS_USER,
    "FOSSIL": _NEEDS_USER,
    "FPMC": _NEEDS_USER + " (and scores with item tables other than item_embedding)",
    "HGN": _NEEDS_USER,
    "HRM": _NEEDS_USER,
    "NPE": _NEEDS_USER,
    "SHAN": _NEEDS_USER,
    "TransRec": _NEEDS_USER + " (and scores by distance, not dot product)",
    "CORE": "scores L2-normalised embeddings divided by a temperature, not user @ item_embedding.T",
    "GRU4RecCPR": "Softmax-CPR: scores mix several hidden states and item partitions, not one dot product",
    "SASRecCPR": "Softmax-CPR: scores mix several hidden states and item partitions, not one dot product",
    "RepeatNet": "scores a repeat/explore mixture of probabilities and has no item_embedding",
    "DIN": "a click-through-rate model: scores (user, item) pairs with an MLP and has no item_embedding",
    "DIEN": "a click-through-rate model: scores (user, item) pairs with an MLP and has no item_embedding",
    "KSR": "needs a knowledge graph and pre-trained entity/relation embeddings (.kg, .link, .ent, .rel)",
    "GRU4RecKG": "needs pre-trained knowledge-graph entity embeddings (.ent)",
    "S3Rec": "a two-stage model: its calculate_loss is the self-supervised pre-training objective (train_stage)",
    "GenRec": "recursive: GenRec cannot be its own user encoder",
    "RandomItem": "a baseline with no trainable user embedding",
    "PopItem": "a baseline with no trainable user embedding",
    "LastItem": "a baseline with no trainable user embedding",
    "TargetItem": "a baseline with no trainable user embedding",
}


def build_user_encoder(config, dataset, load_weights=True):
    """The ``user_encoder`` model; ``load_weights``: start from ``user_encoder_checkpoint`` if one is set
    (False when a GenRec checkpoint's own weights follow)."""
    name = config["user_encoder"]
    if name not in USER_ENCODERS:
        reason = REFUSED_USER_ENCODERS.get(name, "not a sequential model checked to score items by user @ item_embedding.T")
        raise ValueError(f"config key 'user_encoder' = '{name}' cannot be used: {reason}. Accepted: {', '.join(USER_ENCODERS)}")
    encoder = get_model(name)(config, dataset)
    if load_weights and config["user_encoder_checkpoint"]:
        load_user_encoder(encoder, name, config["user_encoder_checkpoint"])
    return encoder


def load_user_encoder(encoder, name, path):
    """Load the weights of a ``run_recbole_gen`` checkpoint of model ``name`` into ``encoder``."""
    checkpoint = load_checkpoint(path)
    saved_model = checkpoint["config"]["model"]
    if saved_model != name:
        raise ValueError(f"user_encoder_checkpoint {path} holds a {saved_model}, but user_encoder is {name}")
    try:
        encoder.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ValueError(
            f"user_encoder_checkpoint {path} does not fit the configured {name} (set the same hyper-parameters "
            f"as when it was trained: {checkpoint['config']['config_dict']}): {err}"
        ) from err


def embedding_size(encoder):
    return encoder.item_embedding.embedding_dim


def _appends_mask_token(encoder):
    """BERT4Rec-style encoders predict the next item at a mask token appended after the history."""
    return hasattr(encoder, "reconstruct_test_data")


def user_embedding(encoder, item_seq, item_seq_len):
    """The encoder's sequence representation ``(B, d)``: what it would score the next item with."""
    if _appends_mask_token(encoder):
        output = encoder.forward(encoder.reconstruct_test_data(item_seq, item_seq_len))
        return encoder.gather_indexes(output, item_seq_len - 1)
    if len(inspect.signature(encoder.forward).parameters) == 1:
        output = encoder.forward(item_seq)  # NextItNet reads the sequence alone
    else:
        output = encoder.forward(item_seq, item_seq_len)
    if output.dim() == 3:
        output = encoder.gather_indexes(output, item_seq_len - 1)
    return output


def recommendation_loss(encoder, user, interaction):
    """The encoder's own loss, from an already computed user embedding when its loss allows.

    With ``loss_type: CE`` the models in ``_LOSS_FROM_USER`` score the catalog by
    ``user @ item_embedding.T`` and add nothing; reusing ``user`` saves a second forward pass (and its
    dropout). Other losses (BPR with sampled negatives, regularisers, contrastive terms, BERT4Rec's
    masked items) go through ``calculate_loss``.
    """
    if type(encoder).__name__ in _LOSS_FROM_USER and encoder.loss_type == "CE":
        logits = user @ encoder.item_embedding.weight.T
        return encoder.loss_fct(logits, interaction[encoder.POS_ITEM_ID])
    return encoder.calculate_loss(interaction)
