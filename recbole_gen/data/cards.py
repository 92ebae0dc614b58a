"""Rendered item cards: a deterministic picture of an item's metadata, for datasets without images.

A card shows, from left to right, one colour stripe per genre (each genre's colour fixed by a hash of
its name), a marker whose height encodes the year, and the title in a band at the bottom, so an image
encoder can learn genre, era and title from pixels.
"""

import hashlib

from PIL import Image, ImageDraw, ImageFont

BASE_SIZE = 128
YEAR_RANGE = (1900, 2030)


def _colour(name):
    digest = hashlib.sha256(name.lower().encode()).digest()
    # Keep colours away from the grey of missing-image placeholders.
    return tuple(40 + digest[i] * 200 // 255 for i in range(3))


def render_card(title, year, genres, size):
    """A ``size`` x ``size`` RGB card for an item; same inputs, same pixels."""
    card = Image.new("RGB", (BASE_SIZE, BASE_SIZE), (245, 245, 240))
    draw = ImageDraw.Draw(card)
    stripes = genres or ["unknown"]
    stripe_width = (BASE_SIZE * 3 // 4) // len(stripes)
    for i, genre in enumerate(stripes):
        draw.rectangle([i * stripe_width, 0, (i + 1) * stripe_width - 1, BASE_SIZE * 3 // 4], fill=_colour(genre))
    if year.isdigit():
        low, high = YEAR_RANGE
        level = min(max((int(year) - low) / (high - low), 0.0), 1.0)
        top = int((1 - level) * (BASE_SIZE * 3 // 4 - 8))
        draw.rectangle([BASE_SIZE * 3 // 4 + 4, top, BASE_SIZE - 4, top + 8], fill=(20, 20, 20))
    draw.text((4, BASE_SIZE * 3 // 4 + 4), title[:20], fill=(0, 0, 0), font=ImageFont.load_default())
    draw.text((4, BASE_SIZE * 3 // 4 + 18), title[20:40], fill=(0, 0, 0), font=ImageFont.load_default())
    return card.resize((size, size), Image.Resampling.BICUBIC)
