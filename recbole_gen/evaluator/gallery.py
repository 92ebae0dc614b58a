"""Galleries: one row per user with the last history items, the ground-truth next item and generated samples.

Written as a PNG per evaluation by GenRecTrainer and by ``python -m recbole_gen.generate``.
"""

import torch
from PIL import Image, ImageDraw, ImageFont

CELL = 96
CAPTION = 24
LABEL_WIDTH = 90
HEADER = 18
TRUTH_COLOUR = (40, 160, 60)
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


def to_pil(image):
    """A PIL image of a uint8 ``(3, H, W)`` tensor."""
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def _caption(draw, font, xy, text, width=CELL):
    text = text.strip()
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-2] + "…" if len(text) > 2 else ""
    draw.text(xy, text, fill=TEXT, font=font)


def select_rows(n_rows, n_users, seed):
    """A seeded sample of ``n_rows`` row indices out of ``n_users`` (the same users every evaluation)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_users, generator=generator)[: min(n_rows, n_users)].sort().values


def grid_image(titles, rows, highlight=None):
    """A PIL image of labelled rows of captioned cells: ``titles`` per column, ``rows`` a list of
    ``(label, cells)`` with ``cells`` a list (one per column) of ``(uint8 image (3, H, W), caption)`` or None
    (left empty); the column ``highlight`` gets a green frame."""
    n_columns = len(titles)
    canvas = Image.new("RGB", (LABEL_WIDTH + n_columns * (CELL + 4), HEADER + len(rows) * (CELL + CAPTION + 4)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for column, title in enumerate(titles):
        _caption(draw, font, (LABEL_WIDTH + column * (CELL + 4), 2), title)
    for row, (label, cells) in enumerate(rows):
        top = HEADER + row * (CELL + CAPTION + 4)
        _caption(draw, font, (2, top + CELL // 2), label, LABEL_WIDTH)
        for column, cell in enumerate(cells):
            if cell is None:
                continue
            left = LABEL_WIDTH + column * (CELL + 4)
            canvas.paste(to_pil(cell[0]).resize((CELL, CELL), Image.Resampling.NEAREST), (left, top))
            if column == highlight:
                draw.rectangle((left - 2, top - 2, left + CELL + 1, top + CELL + 1), outline=TRUTH_COLOUR, width=2)
            _caption(draw, font, (left, top + CELL + 4), cell[1])
    return canvas


def gallery_image(model, interaction, generated, item_images, item_texts, user_tokens, n_history, sample_titles=None):
    """A PIL image: for each row of ``interaction`` (a user), history | truth | generated images.

    ``generated``: uint8 images, the same number for each row, rows' samples adjacent (as
    ``GenRec.generate`` returns them); or one list per row of ``(uint8 image, caption)`` cells, as many as
    that row has (rows with fewer leave their last columns empty). ``item_images(ids)``: uint8 images of
    catalog items (their files, or their codes decoded when the files are not at hand); ``item_texts``:
    captions by item id. ``sample_titles``: the generated columns' titles (default "generated 1", ...).
    """
    item_seq = interaction[model.ITEM_SEQ].cpu()
    item_seq_len = interaction[model.ITEM_SEQ_LEN].cpu()
    targets = interaction[model.ITEM_ID].cpu()
    if isinstance(generated, torch.Tensor):
        n_samples = len(generated) // len(targets)
        generated = [[(image, "") for image in generated[row * n_samples : (row + 1) * n_samples]] for row in range(len(targets))]
    n_columns = max([len(cells) for cells in generated] + [0])
    sample_titles = sample_titles or [f"generated {i + 1}" for i in range(n_columns)]
    titles = [f"history -{n_history - i}" for i in range(n_history)] + ["ground truth"] + list(sample_titles[:n_columns])
    rows = []
    for row, (user, length, target) in enumerate(zip(user_tokens, item_seq_len.tolist(), targets.tolist())):
        history = item_seq[row, max(0, length - n_history) : length].tolist()
        known = history + [target]
        images = item_images(torch.tensor(known))
        cells = [None] * (n_history - len(history)) + [(image, item_texts[i]) for image, i in zip(images, known)]
        rows.append((f"user {user}", cells + list(generated[row])))
    return grid_image(titles, rows, highlight=n_history)
