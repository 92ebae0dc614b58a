"""Reproducible sampling streams for generators.

Every (user, sample) pair draws its own uniform numbers from a counter-based hash (SplitMix64) of the
seed, the user id and the sample index. So a user's generated items depend on neither the batch they
are evaluated in nor the evaluation batch size, and a split's stream is a seed of its own
(:func:`split_seed`): validation (checkpoint selection) and test (the reported row) never share noise.
"""

import numpy as np
import torch

SPLITS = {"valid": 1, "test": 2}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x):
    x = (x + _GOLDEN).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _combine(state, values):
    return _splitmix64(np.asarray(state, dtype=np.uint64) ^ np.asarray(values, dtype=np.uint64))


def stream_seed(seed, *labels):
    """A seed derived from ``seed`` and integer ``labels`` (e.g. a split's index)."""
    state = _splitmix64(np.array([seed], dtype=np.uint64))
    for label in labels:
        state = _combine(state, [label])
    return int(state[0] >> np.uint64(1))  # < 2**63: a valid torch / numpy seed


def split_seed(seed, split):
    """The sampling seed of ``split`` ('valid' or 'test') under the evaluation seed ``seed``."""
    return stream_seed(seed, SPLITS[split])


def row_uniforms(seed, users, num_samples, length):
    """Uniforms in [0, 1), ``(len(users) * num_samples, length)`` float64, rows' samples adjacent; row
    ``(u, j)`` depends only on ``seed``, ``users[u]`` and ``j``."""
    with np.errstate(over="ignore"):
        users = np.asarray(users, dtype=np.int64).astype(np.uint64)
        state = _combine(_splitmix64(np.array([seed], dtype=np.uint64)), users)  # (U,)
        rows = _combine(np.repeat(state, num_samples), np.tile(np.arange(num_samples, dtype=np.uint64), len(users)))
        bits = _combine(rows[:, None], np.arange(length, dtype=np.uint64)[None, :])
    return torch.from_numpy((bits >> np.uint64(11)).astype(np.float64) * 2.0**-53)
