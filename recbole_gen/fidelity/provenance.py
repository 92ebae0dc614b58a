"""Provenance of a shown image: the PNG carries, in a text chunk, the JSON of what generated it.

:func:`save_image` writes the image with a ``recbole_gen`` text chunk (model, checkpoint, seed, user, sample,
anything else given, and the recbole_gen version), atomically; :func:`read_provenance` reads it back. Any PNG
reader shows the chunk (e.g. ``PIL.Image.open(path).text["recbole_gen"]``).
"""

import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo

import recbole_gen
from recbole_gen.fidelity.checks import to_pil
from recbole_gen.fitting import atomic_file

PROVENANCE_KEY = "recbole_gen"
REQUIRED_KEYS = ("model", "checkpoint", "seed")


def save_image(image, path, metadata):
    """Write ``image`` (uint8 ``(3, S, S)``) as a PNG at ``path`` with ``metadata`` (JSON values; ``model``,
    ``checkpoint`` and ``seed`` required, ``user`` and ``sample`` customary) in its ``recbole_gen`` text chunk,
    through a temporary sibling file renamed into place."""
    for key in REQUIRED_KEYS:
        if key not in metadata:
            raise ValueError(f"provenance metadata for {path} lacks the key {key!r}; required: {', '.join(REQUIRED_KEYS)}")
    record = dict(metadata)
    version = getattr(recbole_gen, "__version__", None)
    if version is not None:
        record["recbole_gen_version"] = version
    for key, value in record.items():
        try:
            json.dumps(value)
        except TypeError as error:
            raise ValueError(f"provenance metadata key {key!r} must hold a JSON value (str, number, bool, None, "
                             f"list, dict); got {type(value).__name__}") from error
    info = PngInfo()
    info.add_text(PROVENANCE_KEY, json.dumps(record, sort_keys=True))
    with atomic_file(path) as staging:
        to_pil(image.unsqueeze(0))[0].save(staging, format="PNG", pnginfo=info)


def read_provenance(path):
    """The metadata :func:`save_image` wrote into the PNG at ``path``."""
    with Image.open(path) as image:
        text = getattr(image, "text", {})  # PNG text chunks; other formats have none
        if PROVENANCE_KEY not in text:
            raise ValueError(f"{path} holds no provenance: no PNG text chunk {PROVENANCE_KEY!r} "
                             f"(recbole_gen.fidelity.provenance.save_image writes one)")
        return json.loads(text[PROVENANCE_KEY])
