"""Every fit (image tokenizer, item encoder, reward encoder) trains on ``config["device"]``, not on a default.

A CPU-only machine cannot run a fit on another device, so the test names the CPU in a way no default
spells, ``cpu:0``, and records the device every module is moved to: a fit that built its model on a
default device (as the item encoder's fit once did, whatever ``device`` said) requests plain ``cpu``.
"""

import torch
from recbole.data import create_dataset

from recbole_gen.config import Config
from recbole_gen.data.item_content import item_content
from recbole_gen.evaluator.encoder import catalog_encoder
from recbole_gen.model.image_tokenizer import load_vq_tokenizer
from recbole_gen.rl.reward import RewardModel

CONFIGURED = torch.device("cpu", 0)


def _moves(monkeypatch):
    """``(module class name, device)`` of every ``Module.to`` call naming a device."""
    moves = []
    original = torch.nn.Module.to

    def to(self, *args, **kwargs):
        device = kwargs.get("device", args[0] if args else None)
        if isinstance(device, (str, torch.device)):
            moves.append((type(self).__name__, torch.device(device)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    return moves


def test_every_fit_moves_its_model_to_the_configured_device(genrec_config, monkeypatch):
    config = Config(model="GenRec", dataset="tiny", config_dict={**genrec_config, "encoder_fit_epochs": 1,
                                                                 "rl_reward_fit_epochs": 1})
    config["device"] = CONFIGURED
    dataset = create_dataset(config)
    moves = _moves(monkeypatch)

    tokenizer = load_vq_tokenizer(config, item_content(config, dataset))
    fitted = {name for name, device in moves if device == CONFIGURED}
    assert "VQModel" in fitted and all(device == CONFIGURED for _, device in moves), moves

    moves.clear()
    _, encoder, _ = catalog_encoder(config, dataset)
    assert "CLIP" in {name for name, _ in moves} and all(device == CONFIGURED for _, device in moves), moves

    moves.clear()
    reward = RewardModel.from_config(config, dataset)
    assert "CLIP" in {name for name, _ in moves} and all(device == CONFIGURED for _, device in moves), moves
    assert tokenizer.device.type == encoder.model.visual.conv1.weight.device.type == "cpu"
    assert reward.encoder.device == CONFIGURED
