"""Time one training step of GenRec's image tokenizer (the default 32 px VQModel) on random images.

    OMP_NUM_THREADS=2 python benchmarks/tokenizer_step.py --batch_sizes 16 64
    OMP_NUM_THREADS=2 python benchmarks/tokenizer_step.py --batch_sizes 16 --variants fused fused+no_onednn fused+channels_last
    OMP_NUM_THREADS=2 python benchmarks/tokenizer_step.py --batch_sizes 16 64 --variants fused fused+bf16 fused+bf16+channels_last

Each variant builds the fit's model (``build_vq_model`` with properties/model/GenRec.yaml's settings) and
runs the fit's step (encode, quantize, decode, MSE + commitment loss, backward, AdamW), warms up, then
prints milliseconds a step and images a second. Variants: ``loop`` (torch's per-tensor AdamW on the CPU),
``fused`` (the fit's AdamW, ``recbole_gen.fitting.fused_kwargs``), with ``+no_onednn`` (oneDNN off),
``+channels_last``, ``+bf16`` (bf16 autocast of the forward pass) or ``+bf16+channels_last``. ``--profile``
prints torch's profiler table of 10 steps per run (docs/tokenizer_fit.md).
"""

import argparse
import time

import torch
import torch.nn.functional as F

from recbole_gen.config import Config
from recbole_gen.fitting import fused_kwargs
from recbole_gen.model.image_tokenizer import build_vq_model


def run(config, batch_size, variant, steps, profile):
    torch.manual_seed(0)
    model = build_vq_model(config).train()
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    parameters = list(model.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, **(fused_kwargs(parameters) if variant.startswith("fused") else {}))
    size = config["tokenizer_image_size"]
    pixels = torch.rand(batch_size, 3, size, size) * 2 - 1

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in variant)

    def step():
        with autocast:
            quantized, commit_loss, _ = model.quantize(model.encode(pixels).latents)
            loss = F.mse_loss(model.decode(quantized, force_not_quantize=True).sample.float(), pixels) + commit_loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = "no_onednn" not in variant
    try:
        for _ in range(5):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - start) / steps
        if profile:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                for _ in range(10):
                    step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    finally:
        torch.backends.mkldnn.enabled = onednn
    print(f"| {variant} | {batch_size} | {1000 * seconds:.1f} | {batch_size / seconds:.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--variants", nargs="+", default=["loop", "fused"],
                        choices=["loop", "fused", "fused+no_onednn", "fused+channels_last", "fused+bf16", "fused+bf16+channels_last"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    config = Config(model="GenRec", dataset="ml-100k")
    print(f"threads {torch.get_num_threads()}\n\n| variant | batch | ms a step | images/s |\n|---|---|---|---|")
    for batch_size in args.batch_sizes:
        for variant in args.variants:
            run(config, batch_size, variant, args.steps, args.profile)


if __name__ == "__main__":
    main()
