"""Dataset recipes: one module per source family, each reading the upstream raw files into a
:class:`~recbole_gen.data.recipes.raw.RawDataset` that ``recbole_gen.data.prepare`` filters and writes.

``RECIPES`` maps a recipe name to its reader and the options (``prepare`` flags) it takes.
"""

import functools

from recbole_gen.data.recipes import amazon, hm, microlens, movielens

RECIPES = {
    "amazon2023": (functools.partial(amazon.read, "amazon2023"), ("category",)),
    "amazon2018": (functools.partial(amazon.read, "amazon2018"), ("category",)),
    "amazon2014": (functools.partial(amazon.read, "amazon2014"), ("category",)),
    "microlens": (microlens.read, ("category",)),
    "ml-1m": (movielens.read, ("posters", "poster_urls")),
    "hm": (hm.read, ()),
}
