"""The fidelity guard: runs the configured checks on generated images and picks what may be shown.

:class:`FidelityGuard` embeds the images once (when a check uses embeddings), runs every check
(:mod:`recbole_gen.fidelity.checks`) and returns a :class:`GuardResult`; :meth:`FidelityGuard.select` keeps, of
each row's candidates, the preferred one that passes every check, or -1 when none does (the caller then shows
the catalog item instead). :func:`build_guard` builds the guard from config (``fidelity_*`` keys);
:func:`pass_rates` is what an evaluation log prints.
"""

from dataclasses import dataclass

import torch

from recbole_gen.fidelity.checks import NearCopyCheck, NeighbourCheck, RealismCheck, SafetyCheck


@dataclass
class GuardResult:
    passed: torch.Tensor  # (N,) bool: the image passes every check
    verdicts: dict  # check name -> list of N Verdicts

    @classmethod
    def concatenate(cls, results):
        """One result of several batches' ``results`` (same checks), in order."""
        return cls(passed=torch.cat([result.passed for result in results]),
                   verdicts={name: [verdict for result in results for verdict in result.verdicts[name]] for name in results[0].verdicts})


@dataclass
class Selection:
    index: torch.Tensor  # (B,) long: index into the images of each row's chosen candidate, -1 when none passes
    result: GuardResult  # the verdicts on all B * k candidates


class FidelityGuard:
    """Runs ``checks`` (each ``check(images, embeddings) -> list[Verdict]`` with a distinct ``name``) on images,
    embedding them once with ``embed`` for the checks that use embeddings (``embed`` may be None if none does)."""

    def __init__(self, checks, embed=None):
        names = [check.name for check in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"each fidelity check may appear once; got {names}")
        if embed is None and any(check.uses_embeddings for check in checks):
            raise ValueError(f"the fidelity checks {names} use embeddings: the guard needs an embedder")
        self.checks = list(checks)
        self.embed = embed

    def __call__(self, images, waived=None):
        """The verdicts of every check on ``images`` (uint8 ``(N, 3, S, S)``) and which pass them all.

        ``waived``: check name -> ``(N,)`` bool, the images that check does not apply to (their verdicts are
        still recorded, but a failure does not count); e.g. ``near_copy`` for crops of a catalog item, which
        repurpose that item by design."""
        unknown = sorted(set(waived or {}) - {check.name for check in self.checks})
        if unknown:
            raise ValueError(f"waived: no check named {unknown}; this guard runs {[check.name for check in self.checks]}")
        embeddings = self.embed(images) if any(check.uses_embeddings for check in self.checks) else None
        verdicts = {check.name: check(images, embeddings) for check in self.checks}
        passed = torch.ones(len(images), dtype=torch.bool)
        for name, check_verdicts in verdicts.items():
            check_passed = torch.tensor([verdict.passed for verdict in check_verdicts], dtype=torch.bool)
            if waived and name in waived:
                check_passed |= waived[name].cpu()
            passed &= check_passed
        return GuardResult(passed=passed, verdicts=verdicts)

    def select(self, images, preference, group_size, waived=None):
        """For each row, the index (into ``images``) of its most preferred candidate that passes every check.

        Args:
            images: uint8 ``(B * k, 3, S, S)``, each row's ``k = group_size`` candidates adjacent.
            preference: ``(B * k,)`` scores, higher = preferred (e.g. the best-of-N criterion).
            group_size: k, the candidates per row.
            waived: as in :meth:`__call__`.

        Returns:
            a :class:`Selection`: ``index`` ``(B,)``, -1 for a row none of whose candidates passes.
        """
        if group_size < 1 or len(images) % group_size:
            raise ValueError(f"group_size={group_size} must divide the {len(images)} candidates into rows")
        if preference.shape != (len(images),):
            raise ValueError(f"preference must have shape ({len(images)},), one score per candidate; "
                             f"got {tuple(preference.shape)}")
        result = self(images, waived)
        passed = result.passed.view(-1, group_size)
        scores = preference.detach().float().cpu().view(-1, group_size).masked_fill(~passed, -torch.inf)
        index = torch.arange(len(passed)) * group_size + scores.argmax(dim=1)
        index[~passed.any(dim=1)] = -1
        return Selection(index=index, result=result)


def pass_rates(result):
    """``{check name: share of images passed, "all": share passing every check, "n_images": N, "n_passed": count}``
    (shares are NaN when there are no images)."""
    rates = {name: torch.tensor([verdict.passed for verdict in verdicts], dtype=torch.float).mean().item()
             for name, verdicts in result.verdicts.items()}
    rates["all"] = result.passed.float().mean().item()
    rates["n_images"] = len(result.passed)
    rates["n_passed"] = int(result.passed.sum())
    return rates


def build_guard(config, catalog_images, reconstructions, catalog_embeddings, has_content, embed, reconstruct=None):
    """The guard of the checks listed in ``config["fidelity_checks"]``, each set by its ``fidelity_*`` keys.

    Args:
        config: a mapping (a RecBole Config or a dict) with the keys of the checks listed:
            ``near_copy``: ``fidelity_copy_hash_distance`` and ``fidelity_copy_similarity`` (each None: calibrate
            on ``reconstructions``), ``fidelity_copy_quantile``;
            ``realism``: ``fidelity_realism_min_psnr`` (None: calibrate on the catalog images),
            ``fidelity_realism_quantile``;
            ``neighbours``: ``fidelity_neighbours``, ``fidelity_neighbours_min`` (None: calibrate),
            ``fidelity_neighbours_quantile``;
            ``safety``: ``fidelity_safety_model``, ``fidelity_safety_labels``, ``fidelity_safety_max_score``.
        catalog_images: ``(n_items, 3, S, S)`` uint8, row = item id.
        reconstructions: ``(n_items, 3, S, S)`` uint8, each catalog item's reconstruction (the image tokenizer
            decoding its codes); only read to calibrate the near-copy thresholds, may be None otherwise.
        catalog_embeddings: ``(n_items, d)`` unit embeddings, row = item id.
        has_content: ``(n_items,)`` bool, the items with an image.
        embed: the embedder ``images -> (N, d)`` of ``catalog_embeddings``' space.
        reconstruct: uint8 images ``(N, 3, S, S)`` -> their uint8 reconstructions (the image tokenizer's encode
            then decode); needed when ``realism`` is listed.
    """
    builders = {
        "near_copy": lambda: _near_copy_check(config, catalog_images, reconstructions, catalog_embeddings, has_content, embed),
        "realism": lambda: _realism_check(config, reconstruct, catalog_images, has_content),
        "neighbours": lambda: NeighbourCheck(catalog_embeddings, has_content, config["fidelity_neighbours"],
                                             config["fidelity_neighbours_min"], config["fidelity_neighbours_quantile"], embed),
        "safety": lambda: _safety_check(config),
    }
    names = config["fidelity_checks"]
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"fidelity_checks must be a list of check names ({', '.join(builders)}); got {names!r}")
    unknown = [name for name in names if name not in builders]
    if unknown:
        raise ValueError(f"fidelity_checks: unknown check(s) {unknown}; accepted: {', '.join(builders)}")
    return FidelityGuard([builders[name]() for name in names], embed)


def _near_copy_check(config, catalog_images, reconstructions, catalog_embeddings, has_content, embed):
    max_hash_distance, min_similarity = config["fidelity_copy_hash_distance"], config["fidelity_copy_similarity"]
    if max_hash_distance is not None and min_similarity is not None:
        return NearCopyCheck(catalog_images, catalog_embeddings, has_content, embed, max_hash_distance, min_similarity)
    if reconstructions is None:
        raise ValueError("fidelity_copy_hash_distance or fidelity_copy_similarity is None, which calibrates it on the "
                         "catalog items' reconstructions, but none were given: pass reconstructions or set both "
                         "(an int of phash bits, a cosine)")
    return NearCopyCheck.calibrated(catalog_images, reconstructions, catalog_embeddings, has_content, embed,
                                    max_hash_distance, min_similarity, config["fidelity_copy_quantile"])


def _realism_check(config, reconstruct, catalog_images, has_content):
    if reconstruct is None:
        raise ValueError("fidelity_checks lists 'realism' but build_guard got no reconstruct: pass reconstruct=..., "
                         "images -> their reconstructions (the image tokenizer's encode then decode)")
    return RealismCheck(reconstruct, catalog_images, has_content, config["fidelity_realism_min_psnr"],
                        config["fidelity_realism_quantile"])


def _safety_check(config):
    if config["fidelity_safety_model"] is None:
        raise ValueError("fidelity_checks lists 'safety' but fidelity_safety_model is None: set it to an "
                         "image-classification model's hub name or local folder (see recbole_gen.fidelity.checks)")
    return SafetyCheck(config["fidelity_safety_model"], config["fidelity_safety_labels"], config["fidelity_safety_max_score"])
