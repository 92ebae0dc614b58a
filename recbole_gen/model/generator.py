"""Generators: a transformers causal LM that predicts image codes, given soft condition tokens, or a
diffusers UNet that denoises the image tokenizer's latents (``generator: diffusion``,
:mod:`recbole_gen.model.diffusion`).

Every autoregressive generator exposes the same four pieces, so GenRec trains and samples them all alike:

- ``embed(codes)``: input embeddings of image codes, ``(..., hidden_size)``;
- ``forward(inputs_embeds, cache)``: the transformer, returning last hidden states and its KV cache;
- ``head(hidden)``: logits over the ``codebook_size`` image codes;
- ``tokenizer``: the :class:`~recbole_gen.model.image_tokenizer.ImageTokenizer` whose codes it predicts.

:class:`CausalLMGenerator` is any ``AutoModelForCausalLM`` whose vocabulary is the image codebook:
by default a small Llama built from the ``gen_*`` keys and trained from scratch, or a pretrained one
from ``generator_path`` (its vocabulary resized to the codebook). :class:`JanusGenerator` uses a
``JanusForConditionalGeneration`` checkpoint's own image-generation path: its VQ model, generation
embeddings and aligner, its language model and its generation head (Janus-Pro, "Generate, Not
Recommend"'s any-to-any LMM family). ``generator_lora_r`` > 0 trains LoRA adapters (peft) on the
transformer and freezes the generator's pretrained weights (a causal LM's code embeddings and head,
new to it, stay trainable).

:func:`generator_components` describes a built generator by its configs (no weights, no paths), and
:func:`generator_from_components` rebuilds the same architecture from them, so a GenRec checkpoint
loads without the tokenizer cache, the catalog images or the pretrained folder it was trained from.
"""

import inspect
import logging
import os

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, LlamaModel

from recbole_gen.model.condition import condition_length
from recbole_gen.model.diffusion import DiffusionGenerator, load_unet, scheduler_config, small_unet
from recbole_gen.model.image_tokenizer import JanusImageTokenizer, load_vq_tokenizer, vq_tokenizer_from_config

logger = logging.getLogger(__name__)

# Recent transformers releases (5.24 here) name every model's KV-cache argument and output field ``cache``; the
# old ``past_key_values`` warns and goes in 5.40. Older releases know only ``past_key_values``.
CACHE_ARGUMENT = "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


class ImageGenerator(nn.Module):
    """A transformer over image codes; subclasses name its ``transformer``, ``embed`` and ``head``."""

    def forward(self, inputs_embeds, cache=None, use_cache=False):
        """Last hidden states ``(B, L, hidden)`` and the KV cache (None unless ``use_cache``)."""
        output = self.transformer(inputs_embeds=inputs_embeds, use_cache=use_cache, **{CACHE_ARGUMENT: cache})
        return output.last_hidden_state, output.get(CACHE_ARGUMENT)


class CausalLMGenerator(ImageGenerator):
    def __init__(self, language_model, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer
        self.lm = language_model
        if self.lm.get_input_embeddings().num_embeddings != tokenizer.codebook_size:
            logger.info(f"Resizing the generator's vocabulary to the {tokenizer.codebook_size} image codes")
            self.lm.resize_token_embeddings(tokenizer.codebook_size)
        self.hidden_size = self.lm.config.get_text_config().hidden_size

    @property
    def transformer(self):
        return self.lm.base_model

    def embed(self, codes):
        return self.lm.get_input_embeddings()(codes)

    def head(self, hidden):
        return self.lm.get_output_embeddings()(hidden)

    def new_modules(self):
        """Modules a pretrained LM does not have already trained for image codes (kept trainable under LoRA)."""
        return [self.lm.get_input_embeddings(), self.lm.get_output_embeddings()]


class JanusGenerator(ImageGenerator):
    def __init__(self, janus):
        super().__init__()
        self.janus = janus
        self.tokenizer = JanusImageTokenizer(janus.model.vqmodel)
        self.hidden_size = janus.config.text_config.hidden_size
        # Image understanding (the SigLIP encoder) and the text head are not used to generate images.
        janus.model.vision_model.requires_grad_(False)
        janus.model.aligner.requires_grad_(False)
        janus.lm_head.requires_grad_(False)

    @property
    def transformer(self):
        return self.janus.model.language_model

    def embed(self, codes):
        return self.janus.prepare_embeddings_for_image_generation(codes)

    def head(self, hidden):
        return self.janus.model.generation_head(hidden)

    def new_modules(self):
        return []


def sequence_length(config, n_codes):
    """Positions the generator reads: the condition tokens (user, history images, instruction) and the codes."""
    return condition_length(config["n_cond_tokens"], config["n_history_images"], config["n_instruction_tokens"]) + n_codes


def small_llama_config(config, tokenizer):
    """The from-scratch generator's shape, from the ``gen_*`` config keys; ``gen_max_positions`` ~ = the
    sequence length the tokenizer's code count gives (so a larger image rung needs no other key)."""
    needed = sequence_length(config, tokenizer.n_tokens)
    positions = config["gen_max_positions"] or needed
    if positions < needed:
        raise ValueError(
            f"config key 'gen_max_positions' = {positions} is below the {needed} positions a sequence takes "
            f"({tokenizer.n_tokens} codes per image plus the condition tokens); set it to ~ to derive it"
        )
    return LlamaConfig(
        vocab_size=tokenizer.codebook_size,
        hidden_size=config["gen_hidden_size"],
        intermediate_size=config["gen_intermediate_size"],
        num_hidden_layers=config["gen_layers"],
        num_attention_heads=config["gen_heads"],
        num_key_value_heads=config["gen_heads"],
        max_position_embeddings=positions,
        tie_word_embeddings=False,
    )


def _is_janus(path):
    return AutoConfig.from_pretrained(path).model_type == "janus"


def _add_lora(config, generator):
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(
        r=config["generator_lora_r"],
        lora_alpha=config["generator_lora_alpha"],
        lora_dropout=0.0,
        target_modules=list(config["generator_lora_target_modules"]),
    )
    generator.requires_grad_(False)
    inject_adapter_in_model(lora, generator.transformer)
    for module in generator.new_modules():
        module.requires_grad_(True)
    trainable = sum(p.numel() for p in generator.parameters() if p.requires_grad)
    logger.info(f"LoRA (r={lora.r}) on {lora.target_modules}: {trainable} trainable generator parameters")


GENERATORS = ("autoregressive", "diffusion")


def _check_kind(config):
    kind = config["generator"]
    if kind not in GENERATORS:
        raise ValueError(f"config key 'generator' = {kind!r}: expected one of {', '.join(GENERATORS)}")
    if kind == "diffusion" and config["generator_lora_r"]:
        raise ValueError("generator_lora_r applies to the autoregressive generator's transformer; set it to 0 for 'diffusion'")
    return kind


def build_diffusion_generator(config, content):
    tokenizer = load_vq_tokenizer(config, content)
    path = config["diffusion_unet_path"]
    vae = None
    if path is None:
        latent_channels = tokenizer.vq.config.vq_embed_dim or tokenizer.vq.config.latent_channels
        unet = small_unet(config, latent_channels, tokenizer.grid_size, config["gen_hidden_size"])
    else:
        unet, vae = load_unet(path)
    return DiffusionGenerator(unet, tokenizer, scheduler_config(config), vae)


def build_generator(config, content):
    """The generator (with its tokenizer) that the ``generator``, ``generator_path``, ``gen_*`` and
    ``diffusion_*`` keys select."""
    if _check_kind(config) == "diffusion":
        return build_diffusion_generator(config, content)
    path = config["generator_path"]
    if path is None:
        tokenizer = load_vq_tokenizer(config, content)
        generator = CausalLMGenerator(LlamaForCausalLM(small_llama_config(config, tokenizer)), tokenizer)
    else:
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(
                f"config key 'generator_path' = '{path}' is not a folder saved by transformers' save_pretrained "
                "(config.json and weights): a JanusForConditionalGeneration (e.g. Janus-Pro-1B) or any causal LM"
            )
        if _is_janus(path):
            from transformers import JanusForConditionalGeneration

            generator = JanusGenerator(JanusForConditionalGeneration.from_pretrained(path))
        else:
            tokenizer = load_vq_tokenizer(config, content)
            generator = CausalLMGenerator(AutoModelForCausalLM.from_pretrained(path), tokenizer)
    if config["generator_lora_r"]:
        _add_lora(config, generator)
    return generator


def _diffusers_components(model):
    return {"config": dict(model.config), "dtype": str(model.dtype).removeprefix("torch.")}


def _model_components(model):
    return {"config": model.config.to_dict(), "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}


def generator_components(generator):
    """The configs that rebuild ``generator``'s architecture (JSON-able): its language model (or Janus
    model) and, for a causal LM, its VQ tokenizer."""
    if isinstance(generator, JanusGenerator):
        return {"kind": "janus", "janus": _model_components(generator.janus)}
    tokenizer = generator.tokenizer
    vq = {"config": dict(tokenizer.vq.config), "image_size": tokenizer.image_size}
    if isinstance(generator, DiffusionGenerator):
        unet, vae = generator.unet, generator.vae
        return {"kind": "diffusion", "unet": _diffusers_components(unet), "scheduler": dict(generator.noise_scheduler.config),
                "tokenizer": vq, "vae": None if vae is None else _diffusers_components(vae)}
    return {"kind": "causal_lm", "lm": _model_components(generator.lm), "tokenizer": vq}


def _diffusers_from_config(model_class, components):
    return model_class.from_config(components["config"]).to(getattr(torch, components["dtype"]))


def _from_config(build, components):
    """``build(config)`` on the saved config, in the saved dtype."""
    return build(AutoConfig.for_model(**components["config"])).to(getattr(torch, components["dtype"]))


def generator_from_components(config, components):
    """The architecture :func:`generator_components` describes, untrained (a checkpoint's weights load into it);
    LoRA adapters as ``generator_lora_r`` says."""
    if components["kind"] == "janus":
        from transformers import JanusForConditionalGeneration

        generator = JanusGenerator(_from_config(JanusForConditionalGeneration, components["janus"]))
    elif components["kind"] == "diffusion":
        tokenizer = vq_tokenizer_from_config(components["tokenizer"]["config"], components["tokenizer"]["image_size"])
        unet = _diffusers_from_config(UNet2DConditionModel, components["unet"])
        vae = components.get("vae")  # absent in checkpoints from before the VAE latent space
        vae = None if vae is None else _diffusers_from_config(AutoencoderKL, vae).eval().requires_grad_(False)
        return DiffusionGenerator(unet, tokenizer, components["scheduler"], vae)
    else:
        tokenizer = vq_tokenizer_from_config(components["tokenizer"]["config"], components["tokenizer"]["image_size"])
        generator = CausalLMGenerator(_from_config(AutoModelForCausalLM.from_config, components["lm"]), tokenizer)
    if config["generator_lora_r"]:
        _add_lora(config, generator)
    return generator
