"""recbole_gen: generative recommendation for RecBole."""

__version__ = "0.1.0"
