"""Fitting artifacts on a catalog (the image tokenizer, the item encoder): one home for the mechanics.

- :func:`cached_fit`: fit once into a folder named by a digest of everything the fit depends on
  (content, settings, the fitting code's version, library versions), written to a staging folder and
  renamed into place, so an interrupted fit never leaves a folder a later run would trust. In a
  distributed run rank 0 fits while the other processes wait, then they load its folder.
- :func:`rank_zero_first`: the block runs on rank 0 before the other processes of a distributed run.
- :func:`isolated_rng`: fitting draws random numbers from its own seed and leaves every device's
  random stream as it was, so a cold-cache run trains exactly like a warm-cache one.
- :func:`atomic_file`: write a file through a temporary sibling and rename it into place.
- :func:`fit_minibatches`: the shuffled mini-batch loop with a progress bar both fits use.
- :func:`fused_kwargs`: ask torch's Adam/AdamW for their fused kernel where the parameters' device has one.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile

import torch

logger = logging.getLogger(__name__)

KEY_FILE = "cache_key.json"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(handle)
    try:
        yield staging
        os.chmod(staging, 0o666 & ~_umask())  # mkstemp's 0600 would make the file private
        os.replace(staging, path)
    except BaseException:
        if os.path.exists(staging):
            os.remove(staging)
        raise


@contextlib.contextmanager
def isolated_rng(seed):
    """Seed torch (CPU and every CUDA device) with ``seed`` inside the block; restore all states after."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


@contextlib.contextmanager
def rank_zero_first():
    """In a distributed run, rank 0 runs the block while every other process waits at a barrier, then the
    others run it (and find what rank 0 cached); in one process, just the block. Every process of the run
    must enter it, in the same order, or they wait for each other forever."""
    first = not _distributed() or torch.distributed.get_rank() == 0
    if not first:
        torch.distributed.barrier()
    try:
        yield
    finally:
        if first and _distributed():
            torch.distributed.barrier()


def cache_digest(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_folder(cache_dir, prefix, key):
    """Where :func:`cached_fit` keeps the artifact of ``key``."""
    return os.path.join(cache_dir, f"{prefix}-{cache_digest(key)}")


def cached_fit(cache_dir, prefix, key, fit, seed):
    """The folder :func:`cache_folder` names, made by ``fit(folder)`` unless it exists.

    ``fit`` writes everything into the (staging) folder it is given and runs under
    :func:`isolated_rng` with ``seed``. ``key`` (JSON-able) is saved beside the artifact. In a distributed
    run only rank 0 fits (:func:`rank_zero_first`); the others load its folder.
    """
    out_dir = cache_folder(cache_dir, prefix, key)
    with rank_zero_first():
        if os.path.isdir(out_dir):
            logger.info(f"Cached fit: {out_dir}")
            return out_dir
        if _distributed() and torch.distributed.get_rank() != 0:
            logger.warning(f"rank {torch.distributed.get_rank()} does not see rank 0's fit {out_dir} and fits it again: "
                           f"put '{cache_dir}' on a file system that every process of the run shares")
        os.makedirs(cache_dir, exist_ok=True)
        staging = tempfile.mkdtemp(dir=cache_dir, prefix=f".{prefix}-")
        try:
            with isolated_rng(seed):
                fit(staging)
            with open(os.path.join(staging, KEY_FILE), "w") as f:
                json.dump(key, f, indent=2, sort_keys=True)
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would make the folder private
            if os.path.isdir(out_dir):  # another run finished the same fit first
                shutil.rmtree(staging)
            else:
                os.replace(staging, out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return out_dir


FUSED_DEVICE_TYPES = ("cpu", "cuda")


def fused_kwargs(parameters):
    """``{"fused": True}`` when every parameter lives on a device whose Adam/AdamW has a fused kernel, else ``{}``.

    torch's Adam and AdamW loop over the parameters one tensor at a time on the CPU by default (``foreach`` and
    ``fused`` are picked automatically only for CUDA); the fused kernel does the same update in one pass, the
    same up to float rounding. The image tokenizer's fit at batch 16 on 2 CPU cores is 4% faster with it
    (docs/tokenizer_fit.md).
    """
    return {"fused": True} if all(p.device.type in FUSED_DEVICE_TYPES for p in parameters) else {}


def fit_minibatches(indices, batch_size, epochs, generator, step, desc, show_progress):
    """Run ``step(batch)`` over shuffled mini-batches of ``indices`` for ``epochs`` epochs, with a progress bar.

    ``step`` trains on one batch and returns its loss (a float), or None to skip the batch. Returns the
    mean loss of each epoch.
    """
    from tqdm import tqdm

    losses = []
    progress = tqdm(range(epochs), desc=desc, ncols=100, disable=not show_progress)
    for _ in progress:
        order = indices[torch.randperm(len(indices), generator=generator)]
        batch_losses = [step(order[start : start + batch_size]) for start in range(0, len(order), batch_size)]
        batch_losses = [loss for loss in batch_losses if loss is not None]
        losses.append(sum(batch_losses) / len(batch_losses))
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses
