"""GeneRec's fidelity checks: each judges every generated image before it is shown.

GeneRec (Wang et al., 2023, "Generative Recommendation: Towards Next-generation Recommender Paradigm",
arXiv:2304.03516) guards what a generative recommender shows with fidelity checks. Each check here is a
callable ``check(images, embeddings=None) -> list[Verdict]``, one :class:`Verdict` (passed, score, reason)
per image, with a ``name`` that keys its verdicts and its config:

- :class:`NearCopyCheck` (``near_copy``): the image duplicates a catalog item, by perceptual hash or by
  embedding cosine; a copy fails.
- :class:`RealismCheck` (``realism``): the image lies far off the catalog's image distribution in the
  embedding space; it fails.
- :class:`SafetyCheck` (``safety``): an image classifier gives a flagged label (e.g. ``nsfw``) more than
  ``max_score`` probability; it fails. Off by default.

Images are uint8 tensors ``(N, 3, S, S)`` on the CPU. An *embedder* is any callable ``images -> (N, d)``
of L2-normalised embeddings (in GenRec, :meth:`recbole_gen.rl.reward.RewardModel.embed`); a caller that
runs several checks embeds the images once and passes ``embeddings`` to each
(:class:`recbole_gen.fidelity.guard.FidelityGuard` does).

Catalog arguments are indexed by RecBole's internal item id: row ``i`` is item ``i``, and ``has_content``
``(n_items,)`` bool marks the rows whose item has an image. Row 0 is RecBole's padding item and is never
compared against, whatever ``has_content`` says.

Plugging in a safety classifier: any Hugging Face image-classification model, by hub name or local folder,
loaded with ``transformers.pipeline("image-classification", model=...)``. Offline, save it once where a
network is reachable and point ``fidelity_safety_model`` at the folder::

    from transformers import AutoImageProcessor, AutoModelForImageClassification
    for auto in (AutoModelForImageClassification, AutoImageProcessor):
        auto.from_pretrained("Falconsai/nsfw_image_detection").save_pretrained("models/nsfw_image_detection")

then set ``fidelity_checks: [near_copy, realism, safety]``, ``fidelity_safety_model:
models/nsfw_image_detection`` and ``fidelity_safety_labels: [nsfw]`` (that model's labels are ``normal`` and
``nsfw``).
"""

from dataclasses import dataclass

import imagehash
import numpy as np
import torch
from PIL import Image


@dataclass
class Verdict:
    passed: bool
    score: float  # what it measures is the check's own (its class docstring says)
    reason: str


def _check_images(images):
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a uint8 tensor (N, 3, S, S); got {images.dtype} of shape {tuple(images.shape)}")


def to_pil(images):
    """The uint8 ``(N, 3, S, S)`` tensor ``images`` as N RGB PIL images."""
    _check_images(images)
    return [Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()) for image in images.cpu()]


def phash_bits(images):
    """``(N, 64)`` bool numpy array: each image's perceptual hash (``imagehash.phash``), bit by bit."""
    hashes = [imagehash.phash(image).hash.flatten() for image in to_pil(images)]
    return np.stack(hashes) if hashes else np.zeros((0, 64), dtype=bool)


def content_rows(has_content):
    """``(M,)`` long: the catalog rows compared against, those with content except row 0 (RecBole's padding)."""
    rows = torch.nonzero(has_content.cpu()).flatten()
    return rows[rows != 0]


def _embedded(images, embeddings, embed, check):
    """The images' embeddings: those the caller passed, else ``embed(images)``."""
    if embeddings is None:
        if embed is None:
            raise ValueError(f"the {check} check has no embedder: pass embeddings=... or build it with embed=...")
        embeddings = embed(images)
    if len(embeddings) != len(images):
        raise ValueError(f"the {check} check got {len(embeddings)} embeddings for {len(images)} images")
    return embeddings.detach().float().cpu()


def copy_similarity_threshold(reconstruction_embeddings, item_embeddings, quantile):
    """The ``quantile`` of the cosine between each catalog item's reconstruction and the item itself.

    Row ``i`` of ``reconstruction_embeddings`` and ``item_embeddings`` (both ``(M, d)``, unit norm) is one
    catalog item. The quantile interpolates linearly between the sorted cosines (``torch.quantile``), so with
    ``quantile=0.05`` about 95% of the reconstructions (all but the lowest 5%, up to one item's rounding) have
    a cosine to their own item at or above it.
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"the copy similarity quantile must lie in [0, 1]; got {quantile}")
    if len(item_embeddings) == 0:
        raise ValueError("calibrating the near-copy similarity needs at least one catalog item with content")
    own = (reconstruction_embeddings.float().cpu() * item_embeddings.float().cpu()).sum(dim=1)
    return own.quantile(quantile).item()


class NearCopyCheck:
    """Fails an image that duplicates a catalog item: its perceptual hash lies within ``max_hash_distance``
    bits (Hamming distance of the 64-bit ``imagehash.phash``) of a catalog item's, or its embedding cosine to
    the closest catalog item is at least ``min_similarity``.

    ``score`` is that highest cosine; ``reason`` names the catalog item the verdict rests on (the one within
    the hash distance if any, else the closest by cosine) with its hash distance and cosine. The hash catches
    pixel copies a re-encoding or a little noise changed; the cosine catches copies the generator decoded a
    little differently (a code off, another tokenizer decoding).

    Args:
        catalog_images: ``(n_items, 3, S, S)`` uint8, row = item id (rows without content are never read).
        catalog_embeddings: ``(n_items, d)`` unit embeddings of the catalog items, from ``embed``'s space.
        has_content: ``(n_items,)`` bool, the items with an image.
        embed: the embedder, used when a call passes no embeddings.
        max_hash_distance: the largest phash Hamming distance (0 to 64 bits) that counts as a copy.
        min_similarity: the smallest cosine that counts as a copy; :meth:`calibrated` chooses it.
    """

    name = "near_copy"
    uses_embeddings = True

    def __init__(self, catalog_images, catalog_embeddings, has_content, embed, max_hash_distance, min_similarity):
        if min_similarity is None:
            raise ValueError("NearCopyCheck needs min_similarity: a cosine, or build it with NearCopyCheck.calibrated")
        self.items = content_rows(has_content)
        if not len(self.items):
            raise ValueError("the near-copy check needs at least one catalog item with content besides row 0 (padding)")
        self.candidates = catalog_embeddings[self.items].float().cpu()
        self.catalog_hashes = phash_bits(catalog_images[self.items])  # computed once, compared with every call
        self.embed = embed
        self.max_hash_distance = max_hash_distance
        self.min_similarity = min_similarity

    @classmethod
    def calibrated(cls, catalog_images, reconstructions, catalog_embeddings, has_content, embed, max_hash_distance,
                   quantile=0.05):
        """The check with ``min_similarity`` chosen from the catalog alone: the ``quantile`` of the cosine between
        each catalog item's reconstruction (``reconstructions``, ``(n_items, 3, S, S)`` uint8, row = item id,
        e.g. the image tokenizer's decoding of the item's own codes) and the item's embedding
        (:func:`copy_similarity_threshold`). With the default 0.05 it catches about 95% of the
        reconstructions of catalog items, or more: the check compares with the *closest* item, at least as
        close as the item's own."""
        items = content_rows(has_content)
        threshold = copy_similarity_threshold(_embedded(reconstructions[items], None, embed, cls.name),
                                              catalog_embeddings[items], quantile)
        return cls(catalog_images, catalog_embeddings, has_content, embed, max_hash_distance, threshold)

    def __call__(self, images, embeddings=None):
        embeddings = _embedded(images, embeddings, self.embed, self.name)
        sims = embeddings @ self.candidates.T  # (N, M)
        distances = (phash_bits(images)[:, None, :] != self.catalog_hashes[None]).sum(axis=2)  # (N, M) Hamming
        verdicts = []
        for image_sims, image_distances in zip(sims, distances):
            by_hash = image_distances.min() <= self.max_hash_distance
            closest = int(image_distances.argmin()) if by_hash else int(image_sims.argmax())
            distance, cosine = int(image_distances[closest]), image_sims[closest].item()
            best_cosine = image_sims.max().item()
            copy = by_hash or best_cosine >= self.min_similarity
            hash_test = f"{'<=' if distance <= self.max_hash_distance else '>'} {self.max_hash_distance}"
            cosine_test = f"{'>=' if cosine >= self.min_similarity else '<'} {self.min_similarity:.3f}"
            reason = (f"{'near copy of' if copy else 'no copy; closest is'} catalog item {self.items[closest].item()} "
                      f"(phash distance {distance} {hash_test}, cosine {cosine:.3f} {cosine_test})")
            verdicts.append(Verdict(passed=not copy, score=best_cosine, reason=reason))
        return verdicts


def realism_scores(embeddings, candidates, neighbours):
    """``(N,)``: each embedding's mean cosine to its ``neighbours`` closest rows of ``candidates``."""
    return (embeddings @ candidates.T).topk(neighbours, dim=1).values.mean(dim=1)


def leave_one_out_realism(candidates, neighbours):
    """``(M,)``: each catalog item's realism score against the other items (itself left out)."""
    sims = candidates @ candidates.T
    sims.fill_diagonal_(-torch.inf)
    return sims.topk(neighbours, dim=1).values.mean(dim=1)


class RealismCheck:
    """Fails an image that lies far off the catalog's image distribution.

    Realism is measured in the embedding space: ``score`` is the mean cosine of the image's embedding to its
    ``neighbours`` closest catalog items with content (the RL reward's realism term,
    :mod:`recbole_gen.rl.reward`). An image passes when ``score >= min_score``. With ``min_score=None`` the
    threshold is the ``quantile`` (linear interpolation, ``torch.quantile``) of the catalog items' own
    leave-one-out scores, each item scored against the other items: with the default 0.01, about 99% of the
    catalog's own items would pass.

    Args:
        catalog_embeddings: ``(n_items, d)`` unit embeddings, row = item id.
        has_content: ``(n_items,)`` bool, the items with an image.
        neighbours: how many closest catalog items a score averages; the catalog needs more items than that.
        min_score: the smallest passing score, or None to calibrate it.
        quantile: the calibration quantile of the leave-one-out scores.
        embed: the embedder, used when a call passes no embeddings.
    """

    name = "realism"
    uses_embeddings = True

    def __init__(self, catalog_embeddings, has_content, neighbours=10, min_score=None, quantile=0.01, embed=None):
        self.candidates = catalog_embeddings[content_rows(has_content)].float().cpu()
        if len(self.candidates) <= neighbours:
            raise ValueError(f"the realism check's neighbours={neighbours} needs more catalog items with content than "
                             f"that; there are {len(self.candidates)}")
        if min_score is None:
            if not 0 <= quantile <= 1:
                raise ValueError(f"the realism quantile must lie in [0, 1]; got {quantile}")
            min_score = leave_one_out_realism(self.candidates, neighbours).quantile(quantile).item()
        self.neighbours = neighbours
        self.min_score = min_score
        self.embed = embed

    def __call__(self, images, embeddings=None):
        scores = realism_scores(_embedded(images, embeddings, self.embed, self.name), self.candidates, self.neighbours)
        verdicts = []
        for score in scores.tolist():
            passed = score >= self.min_score
            reason = (f"mean cosine {score:.3f} to the {self.neighbours} closest catalog items "
                      f"{'>=' if passed else '<'} {self.min_score:.3f}")
            verdicts.append(Verdict(passed=passed, score=score, reason=reason))
        return verdicts


class SafetyCheck:
    """Fails an image to which an image classifier gives any of the ``flagged_labels`` a probability above
    ``max_score``; ``score`` is the highest flagged probability.

    Args:
        model: a Hugging Face image-classification model: a hub name or a local folder (offline: a folder
            saved with ``save_pretrained``, model and image processor together).
        flagged_labels: labels of the model (its ``config.id2label``) that fail an image.
        max_score: the largest flagged probability an image may have.
    """

    name = "safety"
    uses_embeddings = False

    def __init__(self, model, flagged_labels, max_score=0.5):
        from transformers import pipeline  # imported here: only a configured safety check needs the pipelines

        self.classifier = pipeline("image-classification", model=model)
        self.labels = list(self.classifier.model.config.id2label.values())
        unknown = [label for label in flagged_labels if label not in self.labels]
        if not flagged_labels or unknown:
            raise ValueError(f"the safety check's flagged labels {list(flagged_labels)} must be a non-empty list of "
                             f"the labels of {model}: {self.labels}")
        self.flagged_labels = list(flagged_labels)
        self.max_score = max_score

    def __call__(self, images, embeddings=None):
        if not len(images):
            return []
        verdicts = []
        for outputs in self.classifier(to_pil(images), top_k=len(self.labels)):
            probabilities = {output["label"]: output["score"] for output in outputs}
            worst = max(self.flagged_labels, key=probabilities.__getitem__)
            passed = probabilities[worst] <= self.max_score
            reason = f"{worst} probability {probabilities[worst]:.3f} {'<=' if passed else '>'} {self.max_score}"
            verdicts.append(Verdict(passed=passed, score=probabilities[worst], reason=reason))
        return verdicts
