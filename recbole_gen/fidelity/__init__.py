"""GeneRec's fidelity checks: what a generative recommender may show, and where a shown image came from.

:mod:`~recbole_gen.fidelity.checks` holds the checks (near copy, realism, neighbours, safety), each judging
every image with a :class:`~recbole_gen.fidelity.checks.Verdict`; :mod:`~recbole_gen.fidelity.guard` runs the
configured checks and picks, of each row's candidates, one that passes them all; :mod:`~recbole_gen.fidelity.provenance`
writes shown images as PNGs that carry what generated them.
"""

from recbole_gen.fidelity.checks import (
    NearCopyCheck, NeighbourCheck, RealismCheck, SafetyCheck, Verdict, copy_hash_threshold, copy_similarity_threshold,
)
from recbole_gen.fidelity.guard import FidelityGuard, GuardResult, Selection, build_guard, pass_rates
from recbole_gen.fidelity.provenance import read_provenance, save_image

__all__ = [
    "FidelityGuard", "GuardResult", "NearCopyCheck", "NeighbourCheck", "RealismCheck", "SafetyCheck", "Selection",
    "Verdict", "build_guard", "copy_hash_threshold", "copy_similarity_threshold", "pass_rates", "read_provenance",
    "save_image",
]
