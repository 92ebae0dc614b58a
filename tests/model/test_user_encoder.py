"""The user encoder allow-list: each accepted model, built tiny, scores and trains through
user_embedding / recommendation_loss exactly as on its own; each refused one is named with its reason."""

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_gen.config import Config
from recbole_gen.model.sequential_recommender.genrec import GenRec
from recbole_gen.model.user_encoder import (
    REFUSED_USER_ENCODERS,
    USER_ENCODERS,
    build_user_encoder,
    recommendation_loss,
    user_embedding,
)

# fast_config's sizes, and the keys it does not set, shrunk too.
TINY = {"num_layers": 1, "block_num": 1, "k_interests": 2, "prototype_size": 4, "interest_size": 2}
# FDSA, GRU4RecF and SASRecF read the item's class (their selected_features).
ITEM_FEATURES = {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "class"]}}
PER_MODEL = {
    "GCSAN": {"reg_weight": 1.0},  # its regulariser, weighted up from 5e-5 so that leaving it out shows
    # FEARec's filters divide by n_layers - 1; contrast (with tau, sim) adds the terms its loss must keep.
    "FEARec": {"n_layers": 2, "contrast": "us_x", "tau": 1.0, "sim": "dot"},
}


def first_batch(data):
    batch = next(iter(data))
    return batch[0] if isinstance(batch, tuple) else batch


def build(fast_config, name):
    config_dict = {**fast_config, **TINY, **ITEM_FEATURES, **PER_MODEL.get(name, {}), "user_encoder": name}
    config = Config(model=name, dataset="tiny", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    encoder = build_user_encoder(config, train_data._dataset).eval()  # no dropout: both paths see one network
    with torch.no_grad():  # RecBole starts biases (BERT4Rec's output_bias too) at zero: make them count
        for parameter in encoder.parameters():
            if not parameter.any():
                parameter.normal_()
    return config, encoder, train_data, test_data


@pytest.mark.parametrize("name", USER_ENCODERS)
def test_user_embedding_is_what_the_model_scores_with(fast_config, name):
    _, encoder, _, test_data = build(fast_config, name)
    batch = first_batch(test_data)
    with torch.no_grad():
        user = user_embedding(encoder, batch[encoder.ITEM_SEQ], batch[encoder.ITEM_SEQ_LEN])
        # BERT4Rec's last embedding row is its mask token, and it adds a per-item bias, the same for every user
        scores = user @ encoder.item_embedding.weight[: encoder.n_items].T + getattr(encoder, "output_bias", 0)
        expected = encoder.full_sort_predict(batch).view(scores.shape)
    assert user.shape == (len(batch), encoder.item_embedding.embedding_dim)
    assert torch.allclose(scores, expected, atol=1e-5)


@pytest.mark.parametrize("name", USER_ENCODERS)
def test_recommendation_loss_is_the_models_own(fast_config, name):
    config, encoder, train_data, _ = build(fast_config, name)
    batch = first_batch(train_data)
    init_seed(config["seed"], True)  # BERT4Rec masks, FEARec samples augmentations
    expected = encoder.calculate_loss(batch)
    init_seed(config["seed"], True)
    user = user_embedding(encoder, batch[encoder.ITEM_SEQ], batch[encoder.ITEM_SEQ_LEN])
    assert torch.allclose(recommendation_loss(encoder, user, batch), expected, atol=1e-6)


@pytest.mark.parametrize(
    "name", ["Caser", "S3Rec", "CORE", "KSR", "GRU4RecCPR", "RepeatNet", "DIN", "GenRec", "LastItem", "BPR"]
)
def test_refused_user_encoder_is_named_with_its_reason(fast_config, name):
    config = Config(model="GenRec", dataset="tiny", config_dict={**fast_config, "user_encoder": name})
    with pytest.raises(ValueError) as error:
        GenRec(config, create_dataset(config))
    message = str(error.value)
    assert f"'user_encoder' = '{name}'" in message
    assert REFUSED_USER_ENCODERS.get(name, "not a sequential model") in message
    assert ", ".join(USER_ENCODERS) in message
