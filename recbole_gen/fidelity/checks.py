"""GeneRec's fidelity checks: each judges every generated image before it is shown.

GeneRec (Wang et al., 2023, "Generative Recommendation: Towards Next-generation Recommender Paradigm",
arXiv:2304.03516) guards what a generative recommender shows with fidelity checks. Each check here is a
callable ``check(images, embeddings=None) -> list[Verdict]``, one :class:`Verdict` (passed, score, reason)
per image, with a ``name`` that keys its verdicts and its config:

- :class:`NearCopyCheck` (``near_copy``): the image duplicates a catalog item, by perceptual hash and
  embedding cosine both; a copy fails.
- :class:`RealismCheck` (``realism``): the image tokenizer reconstructs the image badly (low PSNR), so it lies
  far off the catalog's image distribution; it fails.
- :class:`NeighbourCheck` (``neighbours``, optional): the image's embedding lies far from its closest catalog
  items'; it fails. Blind to off-distribution images in a small fitted embedding space (its docstring says).
- :class:`SafetyCheck` (``safety``): an image classifier gives a flagged label (e.g. ``nsfw``) more than
  ``max_score`` probability; it fails. Off by default.

Images are uint8 tensors ``(N, 3, S, S)`` on the CPU. A *reconstruct* callable maps such images to their
uint8 reconstructions of the same shape (in GenRec, the image tokenizer's encode then decode). An *embedder*
is any callable ``images -> (N, d)`` of L2-normalised embeddings (in GenRec,
:meth:`recbole_gen.rl.reward.RewardModel.embed`); a caller that runs several checks embeds the images once and
passes ``embeddings`` to each (:class:`recbole_gen.fidelity.guard.FidelityGuard` does).

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

import math
from dataclasses import dataclass

import imagehash
import numpy as np
import torch
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio


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


def _check_quantile(quantile, what):
    if not 0 <= quantile <= 1:
        raise ValueError(f"the {what} quantile must lie in [0, 1]; got {quantile}")


def copy_similarity_threshold(reconstruction_embeddings, item_embeddings, quantile):
    """The ``quantile`` of the cosine between each catalog item's reconstruction and the item itself.

    Row ``i`` of ``reconstruction_embeddings`` and ``item_embeddings`` (both ``(M, d)``, unit norm) is one
    catalog item. The quantile interpolates linearly between the sorted cosines (``torch.quantile``), so with
    ``quantile=0.025`` about 97.5% of the reconstructions (all but the lowest 2.5%, up to one item's rounding)
    have a cosine to their own item at or above it.
    """
    _check_quantile(quantile, "copy similarity")
    if len(item_embeddings) == 0:
        raise ValueError("calibrating the near-copy similarity needs at least one catalog item with content")
    own = (reconstruction_embeddings.float().cpu() * item_embeddings.float().cpu()).sum(dim=1)
    return own.quantile(quantile).item()


def copy_hash_threshold(reconstruction_hashes, item_hashes, quantile):
    """The ``1 - quantile`` quantile of the phash Hamming distance between each catalog item's reconstruction
    and the item itself, rounded down to a whole number of bits.

    Row ``i`` of ``reconstruction_hashes`` and ``item_hashes`` (both ``(M, 64)`` bool, :func:`phash_bits`) is one
    catalog item. The quantile interpolates linearly between the sorted distances (``torch.quantile``); rounding
    down keeps every distance at or below it, so with ``quantile=0.025`` about 97.5% of the reconstructions (up
    to one item's rounding) lie within it of their own item.
    """
    _check_quantile(quantile, "copy hash distance")
    if len(item_hashes) == 0:
        raise ValueError("calibrating the near-copy hash distance needs at least one catalog item with content")
    own = torch.from_numpy((reconstruction_hashes != item_hashes).sum(axis=1)).double()
    # rounded first: a quantile interpolated onto a whole number can land a hair below it in floating point
    return math.floor(round(own.quantile(1 - quantile).item(), 6))


class NearCopyCheck:
    """Fails an image that duplicates a catalog item: for some catalog item, both its perceptual hash lies within
    ``max_hash_distance`` bits (Hamming distance of the 64-bit ``imagehash.phash``) and its embedding cosine is
    at least ``min_similarity``.

    Both signals must agree (GeneRec's "perceptual hash and the item-encoder similarity above a threshold")
    because the cosine alone misjudges: in a small fitted embedding space, off-distribution images collapse onto
    a few catalog items. On ml-100k posters (32 px, a small open_clip reward encoder), uniform noise embeds at
    cosine ~0.97 to some poster, above the calibrated copy cosine 0.826, while its phash lies 16 to 20 bits from
    the nearest poster (5% to 95% quantiles), as far as a poster's tokenizer reconstruction from the nearest
    other poster (14 to 20), and a reconstruction lies 2 to 12 bits from its own poster.

    ``score`` is the highest cosine among the catalog items within the hash distance, or the highest cosine
    overall when none is within it; ``reason`` names that item with its hash distance and cosine.

    Args:
        catalog_images: ``(n_items, 3, S, S)`` uint8, row = item id (rows without content are never read).
        catalog_embeddings: ``(n_items, d)`` unit embeddings of the catalog items, from ``embed``'s space.
        has_content: ``(n_items,)`` bool, the items with an image.
        embed: the embedder, used when a call passes no embeddings.
        max_hash_distance: the largest phash Hamming distance (an int, 0 to 64 bits) that counts as a copy;
            :meth:`calibrated` chooses it.
        min_similarity: the smallest cosine that counts as a copy; :meth:`calibrated` chooses it.
    """

    name = "near_copy"
    uses_embeddings = True

    def __init__(self, catalog_images, catalog_embeddings, has_content, embed, max_hash_distance, min_similarity):
        if max_hash_distance is None or min_similarity is None:
            raise ValueError("NearCopyCheck needs max_hash_distance (an int) and min_similarity (a cosine); "
                             "build it with NearCopyCheck.calibrated to choose those left None")
        if isinstance(max_hash_distance, bool) or not isinstance(max_hash_distance, (int, np.integer)):
            raise ValueError(f"the near-copy max_hash_distance must be an int (bits); got {max_hash_distance!r}")
        self.items = content_rows(has_content)
        if not len(self.items):
            raise ValueError("the near-copy check needs at least one catalog item with content besides row 0 (padding)")
        self.candidates = catalog_embeddings[self.items].float().cpu()
        self.catalog_hashes = phash_bits(catalog_images[self.items])  # computed once, compared with every call
        self.embed = embed
        self.max_hash_distance = int(max_hash_distance)
        self.min_similarity = min_similarity

    @classmethod
    def calibrated(cls, catalog_images, reconstructions, catalog_embeddings, has_content, embed,
                   max_hash_distance=None, min_similarity=None, quantile=0.025):
        """The check with the thresholds left None chosen from the catalog alone, from each catalog item's
        reconstruction (``reconstructions``, ``(n_items, 3, S, S)`` uint8, row = item id, e.g. the image
        tokenizer's decoding of the item's own codes) compared with the item: ``max_hash_distance`` is the
        ``1 - quantile`` quantile of their phash distances, rounded down (:func:`copy_hash_threshold`), and
        ``min_similarity`` the ``quantile`` of their cosines (:func:`copy_similarity_threshold`). Each criterion
        keeps about ``1 - quantile`` of the reconstructions, so with the default 0.025 the check catches about 95%
        of them, or more (the two criteria miss the same items in part). A threshold given (not None) is used
        as is."""
        items = content_rows(has_content)
        if max_hash_distance is None:
            max_hash_distance = copy_hash_threshold(phash_bits(reconstructions[items]), phash_bits(catalog_images[items]),
                                                    quantile)
        if min_similarity is None:
            min_similarity = copy_similarity_threshold(_embedded(reconstructions[items], None, embed, cls.name),
                                                       catalog_embeddings[items], quantile)
        return cls(catalog_images, catalog_embeddings, has_content, embed, max_hash_distance, min_similarity)

    def __call__(self, images, embeddings=None):
        sims = _embedded(images, embeddings, self.embed, self.name) @ self.candidates.T  # (N, M)
        distances = torch.from_numpy((phash_bits(images)[:, None, :] != self.catalog_hashes[None]).sum(axis=2))  # (N, M)
        within = distances <= self.max_hash_distance
        # the item a verdict rests on: the most similar one within the hash distance, else the most similar one
        ranked = torch.where(within.any(dim=1, keepdim=True), sims.masked_fill(~within, -torch.inf), sims)
        verdicts = []
        for closest, image_sims, image_distances in zip(ranked.argmax(dim=1).tolist(), sims, distances):
            distance, cosine = int(image_distances[closest]), image_sims[closest].item()
            copy = distance <= self.max_hash_distance and cosine >= self.min_similarity
            hash_test = f"{'<=' if distance <= self.max_hash_distance else '>'} {self.max_hash_distance}"
            cosine_test = f"{'>=' if cosine >= self.min_similarity else '<'} {self.min_similarity:.3f}"
            reason = (f"{'near copy of' if copy else 'no copy; closest is'} catalog item {self.items[closest].item()} "
                      f"(phash distance {distance} {hash_test}, cosine {cosine:.3f} {cosine_test})")
            verdicts.append(Verdict(passed=not copy, score=cosine, reason=reason))
        return verdicts


def reconstruction_psnr(images, reconstruct):
    """``(N,)``: the PSNR in dB between each uint8 image ``(N, 3, S, S)`` and ``reconstruct(images)``, on pixels
    scaled to [0, 1] (torchmetrics' ``peak_signal_noise_ratio``); an exact reconstruction scores ``inf``."""
    reconstructions = reconstruct(images)
    if reconstructions.dtype != torch.uint8 or reconstructions.shape != images.shape:
        raise ValueError(f"the realism check's reconstruct must return uint8 images of the input's shape "
                         f"{tuple(images.shape)}; got {reconstructions.dtype} of shape {tuple(reconstructions.shape)}")
    return peak_signal_noise_ratio(reconstructions.detach().cpu().float() / 255, images.cpu().float() / 255,
                                   data_range=1.0, reduction="none", dim=(1, 2, 3))


class RealismCheck:
    """Fails an image that lies far off the catalog's image distribution, as the image tokenizer sees it.

    Realism is measured by reconstruction: ``score`` is the PSNR in dB between the image and
    ``reconstruct(image)`` (in GenRec the VQ image tokenizer's encode then decode; fitted on the catalog, it
    reconstructs catalog-like images well and off-distribution ones badly), computed by torchmetrics on pixels in
    [0, 1]. An image passes when ``score >= min_psnr``. With ``min_psnr=None`` the threshold is the ``quantile``
    (linear interpolation, ``torch.quantile``) of the catalog images' own PSNR: with the default 0.01, about 99%
    of the catalog's images would pass.

    Not by embeddings: in a small fitted embedding space, off-distribution images collapse onto a few catalog
    items. On ml-100k posters (32 px, a small open_clip reward encoder), uniform noise embeds at cosine ~0.97 to
    some catalog poster, so the mean cosine to its 10 closest posters (0.944) clears the threshold calibrated on
    the catalog (0.827) and :class:`NeighbourCheck` passes it.

    Args:
        reconstruct: a callable, uint8 images ``(N, 3, S, S)`` -> their uint8 reconstructions of the same shape
            (it receives all catalog images with content at once when calibrating).
        catalog_images: ``(n_items, 3, S, S)`` uint8, row = item id; only read to calibrate.
        has_content: ``(n_items,)`` bool, the items with an image.
        min_psnr: the smallest passing PSNR in dB, or None to calibrate it.
        quantile: the calibration quantile of the catalog images' PSNR.
    """

    name = "realism"
    uses_embeddings = False

    def __init__(self, reconstruct, catalog_images, has_content, min_psnr=None, quantile=0.01):
        if min_psnr is None:
            _check_quantile(quantile, "realism")
            items = content_rows(has_content)
            if not len(items):
                raise ValueError("calibrating the realism check needs at least one catalog item with content besides "
                                 "row 0 (padding)")
            own = reconstruction_psnr(catalog_images[items], reconstruct).double()
            # an exact reconstruction's inf would turn torch.quantile's interpolation into NaN
            min_psnr = own.nan_to_num(posinf=torch.finfo(own.dtype).max).quantile(quantile).item()
        self.reconstruct = reconstruct
        self.min_psnr = min_psnr

    def __call__(self, images, embeddings=None):
        _check_images(images)
        verdicts = []
        for score in reconstruction_psnr(images, self.reconstruct).tolist():
            passed = score >= self.min_psnr
            reason = f"PSNR {score:.2f} dB to its reconstruction {'>=' if passed else '<'} {self.min_psnr:.2f} dB"
            verdicts.append(Verdict(passed=passed, score=score, reason=reason))
        return verdicts


def realism_scores(embeddings, candidates, neighbours):
    """``(N,)``: each embedding's mean cosine to its ``neighbours`` closest rows of ``candidates``."""
    return (embeddings @ candidates.T).topk(neighbours, dim=1).values.mean(dim=1)


def leave_one_out_realism(candidates, neighbours):
    """``(M,)``: each catalog item's :func:`realism_scores` against the other items (itself left out)."""
    sims = candidates @ candidates.T
    sims.fill_diagonal_(-torch.inf)
    return sims.topk(neighbours, dim=1).values.mean(dim=1)


class NeighbourCheck:
    """Fails an image whose embedding lies far from the catalog's: optional, and blind to off-distribution images
    in a small fitted embedding space (measured there, uniform noise passes it; :class:`RealismCheck` says why).

    ``score`` is the mean cosine of the image's embedding to its ``neighbours`` closest catalog items with
    content (the RL reward's realism term, :mod:`recbole_gen.rl.reward`). An image passes when
    ``score >= min_score``. With ``min_score=None`` the threshold is the ``quantile`` (linear interpolation,
    ``torch.quantile``) of the catalog items' own leave-one-out scores, each item scored against the other items:
    with the default 0.01, about 99% of the catalog's own items would pass.

    Args:
        catalog_embeddings: ``(n_items, d)`` unit embeddings, row = item id.
        has_content: ``(n_items,)`` bool, the items with an image.
        neighbours: how many closest catalog items a score averages; the catalog needs more items than that.
        min_score: the smallest passing score, or None to calibrate it.
        quantile: the calibration quantile of the leave-one-out scores.
        embed: the embedder, used when a call passes no embeddings.
    """

    name = "neighbours"
    uses_embeddings = True

    def __init__(self, catalog_embeddings, has_content, neighbours=10, min_score=None, quantile=0.01, embed=None):
        self.candidates = catalog_embeddings[content_rows(has_content)].float().cpu()
        if len(self.candidates) <= neighbours:
            raise ValueError(f"the neighbours check's neighbours={neighbours} needs more catalog items with content "
                             f"than that; there are {len(self.candidates)}")
        if min_score is None:
            _check_quantile(quantile, "neighbours")
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
