"""Best-of-N: the baseline an RL-trained generator must beat at the same number of samples.

For each shown image, N samples of the (supervised) generator are drawn and the one closest, in the reward
encoder's space, to what the user encoder expects is kept: the mean of the embeddings of its top
``RERANK_TOP_ITEMS`` catalog items (items with content), weighted by the softmax of their scores. It uses
the user encoder and the reward space only, never the evaluation space or the targets.
"""

import torch

from recbole_gen.model.sequential_recommender.genrec import Generation

RERANK_TOP_ITEMS = 10


@torch.no_grad()
def expected_embedding(model, reward_model, interaction, top_items=RERANK_TOP_ITEMS):
    """``(B, d)``: the user-encoder-weighted mean reward-space embedding of each row's ``top_items`` top catalog
    items (1: the embedding of its top item)."""
    return reward_model.expected(model.user_encoder.full_sort_predict(interaction), top_items)


def top_items_mean(scores, catalog, top_items):
    """``(B, d)``: the mean of the ``catalog`` rows of each row's ``top_items`` best-scored items, weighted by the
    softmax of their ``scores`` ``(B, n_items)`` (not normalised)."""
    top = scores.topk(top_items, dim=1)
    return (top.values.softmax(dim=1).cpu().unsqueeze(-1) * catalog[top.indices.cpu()]).sum(dim=1)


def expectation_scores(reward_model, images, expected):
    """``(B * m,)``: the similarity in ``reward_model``'s space of each of the B * m ``images`` (rows' images
    adjacent) to its row's ``expected`` embedding ``(B, d)``."""
    embeddings = reward_model.embed(images)
    return (embeddings.view(len(expected), -1, embeddings.shape[1]) * expected[:, None]).sum(dim=-1).flatten()


def best_of_n(generation, expected, reward_model, n):
    """Keep, of every ``n`` adjacent samples of ``generation``, the one closest to its row's ``expected``
    embedding ``(B, d)`` (rows' samples adjacent: B * k * n samples -> B * k)."""
    sims = expectation_scores(reward_model, generation.images, expected).view(-1, n)
    keep = torch.arange(len(sims)) * n + sims.argmax(dim=1)
    return Generation(codes=generation.codes[keep.to(generation.codes.device)], images=generation.images[keep])


def generate_best_of_n(model, reward_model, interaction, samples, n, seed):
    """``samples`` images per row of ``interaction`` (rows' samples adjacent), each the best of ``n`` samples of
    ``model`` (:func:`best_of_n`). Rows are drawn a ``1 / n`` share of the batch at a time (rounded up), so best-of-N
    holds about as many samples at once as plain sampling of the same batch (at most ``n - 1`` rows' more); a
    user's samples depend only on ``seed``, the user and their index (``GenRec.generate``), so the result is the
    same as drawing them all at once."""
    rows = -(-len(interaction) // n)
    kept = []
    for start in range(0, len(interaction), rows):
        chunk = interaction[start : start + rows]
        generation = model.generate(chunk, samples * n, seed=seed)
        kept.append(best_of_n(generation, expected_embedding(model, reward_model, chunk), reward_model, n))
    return Generation(codes=torch.cat([g.codes for g in kept]), images=torch.cat([g.images for g in kept]))
