"""Rendered cards encode genre, year and title in pixels, deterministically."""

import numpy as np

from recbole_gen.data.cards import render_card


def _pixels(*args):
    return np.asarray(render_card(*args))


def test_same_metadata_same_pixels():
    assert (_pixels("Toy Story", "1995", ["Animation", "Comedy"], 64) == _pixels("Toy Story", "1995", ["Animation", "Comedy"], 64)).all()


def test_each_field_changes_the_card():
    base = _pixels("Toy Story", "1995", ["Comedy"], 64)
    assert (base != _pixels("Toy Story", "1995", ["Horror"], 64)).any()
    assert (base != _pixels("Toy Story", "1935", ["Comedy"], 64)).any()
    assert (base != _pixels("Heat", "1995", ["Comedy"], 64)).any()


def test_size_and_mode():
    card = render_card("Heat", "", [], 48)
    assert card.size == (48, 48) and card.mode == "RGB"
