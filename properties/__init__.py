"""Default hyper-parameters of recbole_gen, installed as package data (see setup.py)."""
