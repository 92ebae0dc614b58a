from setuptools import find_packages, setup

HYPER = [
    # RecBole's HyperTuning (--tool hyperopt). 0.2.5 is what recbole 1.2.1's own 'hyperopt' extra pins: later
    # releases draw from a numpy Generator, and its exhaustive search (and ray's HyperOptSearch) pass a RandomState.
    "hyperopt==0.2.5",
    # ray tune (--tool ray) on the ray 2.6.3 recbole pins; its tune.run reads trial results back with pyarrow.
    "ray[tune]==2.6.3",
    # pyarrow 26 refuses numpy < 2 (pinned below); 20.0 is tested with ray 2.6.3.
    "pyarrow<21",
]

setup(
    name="recbole-gen",
    version="0.1.0",
    description="Generative recommendation for RecBole: generate the next item, score it by content.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["recbole_gen", "recbole_gen.*"]) + ["recbole_gen.properties"],
    # The defaults live in a top-level properties/ folder (as in RecBole); mapping it into the package
    # makes a non-editable install carry them too.
    package_dir={"recbole_gen.properties": "properties"},
    package_data={
        "recbole_gen.properties": ["*.yaml", "model/*.yaml", "dataset/*.yaml", "hyper/*.yaml", "presets/*.yaml"],
        "recbole_gen.evaluator": ["model_configs/*.json"],
    },
    install_requires=[
        "recbole==1.2.1",
        # recbole 1.2.1's Config assigns np.float_, removed in numpy 2.
        "numpy<2",
        # recbole 1.2.1's atomic-file loader breaks on pandas 3.
        "pandas<3",
        # recbole 1.2.1's graph models (LightGCN, NGCF, ...) call dok_matrix._update, removed in scipy 1.13
        # (RUCAIBox/RecBole#2034).
        "scipy<1.13",
        # recbole 1.2.1 requires ray 2.6.3, whose import (via recbole.quick_start) needs pkg_resources,
        # dropped from setuptools 81. recbole_gen itself never imports ray.
        "setuptools<81",
        "torch>=2.1",
        "torchvision",
        "transformers",
        "diffusers",
        "peft",  # LoRA on the generator (generator_lora_r)
        "tensorboard",  # galleries and curves (RecBole logs to it too)
        "open_clip_torch",
        "imagehash",  # perceptual hashes for the near-copy fidelity check (recbole_gen.fidelity)
        "torchmetrics",  # PSNR for the realism fidelity check
        "pyyaml",
        "pillow",
        "tqdm",
    ],
    extras_require={
        # Hyper-parameter search (python -m recbole_gen.hyper, docs/hyper_search.md).
        "hyper": HYPER,
        # tests/test_hyper.py runs both search tools.
        "test": ["pytest", *HYPER],
    },
)
