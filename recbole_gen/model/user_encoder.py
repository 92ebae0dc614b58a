"""The user encoder: any RecBole (or recbole_gen) sequential model, used for its user embedding.

Its hyper-parameters come from its own YAML file, merged under the outer model's by
:class:`recbole_gen.config.Config`. It keeps its own recommendation loss (``calculate_loss``), so it
can be trained jointly, and it can start from a checkpoint written by ``run_recbole_gen``.
"""

from recbole.model.abstract_recommender import SequentialRecommender

from recbole_gen.compat import load_checkpoint
from recbole_gen.utils import get_model


def build_user_encoder(config, dataset):
    name = config["user_encoder"]
    model_class = get_model(name)
    if not issubclass(model_class, SequentialRecommender):
        raise ValueError(f"config key 'user_encoder' = '{name}' is not a sequential recommender (e.g. SASRec, GRU4Rec, BERT4Rec)")
    encoder = model_class(config, dataset)
    if not hasattr(encoder, "item_embedding"):
        raise ValueError(
            f"user_encoder '{name}' has no item_embedding: GenRec needs a model that scores items by the dot product "
            "of its sequence output with item embeddings (SASRec, GRU4Rec, BERT4Rec, NARM, ...)"
        )
    if config["user_encoder_checkpoint"]:
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
    output = encoder.forward(item_seq, item_seq_len)
    if output.dim() == 3:
        output = encoder.gather_indexes(output, item_seq_len - 1)
    return output


def recommendation_loss(encoder, user, interaction):
    """The encoder's own loss, from an already computed user embedding when its loss allows.

    SASRec, GRU4Rec and the other next-item models with ``loss_type: CE`` score the catalog by
    ``user @ item_embedding.T``; reusing ``user`` saves a second forward pass (and its dropout). Other
    losses (BPR with sampled negatives, BERT4Rec's masked items) go through ``calculate_loss``.
    """
    if getattr(encoder, "loss_type", None) == "CE" and not _appends_mask_token(encoder):
        logits = user @ encoder.item_embedding.weight.T
        return encoder.loss_fct(logits, interaction[encoder.POS_ITEM_ID])
    return encoder.calculate_loss(interaction)
