"""GenRec's second stage: online RL of the generator from a supervised GenRec checkpoint.

"Generate, Not Recommend" follows supervised fine-tuning with online RL on a reward computed against the
user's future items. :class:`GenRecRLTrainer` runs that stage when ``rl_init_checkpoint`` names a
supervised GenRec checkpoint (the model is built from it, see :meth:`GenRec.start_checkpoint`). An epoch is
``rl_steps_per_epoch`` updates; each takes ``rl_batch_size`` training rows (a user's history prefix and its
next item, from the training split only) and:

- ``rl_algorithm: grpo``: samples a group of ``rl_group_size`` images per row from the current policy
  (``rl_temperature``, ``rl_top_k``, ``rl_guidance_scale``; the default 1.0 samples the conditional
  policy itself, without classifier-free guidance, so the log-probabilities it trains are those it
  sampled from), scores them with the reward (:mod:`recbole_gen.rl.reward`), centres rewards within
  each group and scales them by the group's or the batch's spread (``rl_advantage_scale``), skips groups
  with no spread, and takes a policy-gradient step on the codes'
  log-probabilities with ``rl_kl_weight`` times the KL to the frozen supervised policy, minus
  ``rl_entropy_weight`` times the policy's entropy per code;
- ``rl_algorithm: dpo``: samples ``rl_group_size`` images per row from the frozen supervised policy,
  pairs the best with the worst by reward, and takes a DPO step (``rl_dpo_beta``), plus
  ``rl_dpo_sft_weight`` times the chosen samples' negative log-likelihood per code (RPO, Pang et al. 2024,
  "Iterative Reasoning Preference Optimization"; trl's ``rpo_alpha``), which keeps the chosen samples likely
  instead of letting DPO lower both likelihoods of a pair.

With ``rl_reward_ensemble`` > 1, steps are rewarded by a :class:`~recbole_gen.rl.reward.RewardEnsemble` of
that many reward encoders (:meth:`GenRecRLTrainer.training_reward`); validation's reward space stays the
first member.

With ``rl_reference_refresh``, each epoch starts by copying the current policy into the reference: DPO
becomes iterated DPO (each epoch's pairs are sampled from, and its loss anchored to, the policy the last
epoch ended with; Xu et al. 2023, "Some things are more CRINGE than others"), and GRPO's KL anchors to
the last epoch's policy instead of the supervised one. An epoch's validation then judges a whole round.

The user encoder and the image tokenizer stay frozen: RL moves the condition and the generator. Each
step's reward (mean, within-group spread, each term), KL, policy entropy, share of zero-spread groups,
copy share and time split (sampling, reward, update) go to tensorboard, to the progress bar, and to
``<checkpoint>-rl.json`` together with each validation's TargetSim in the evaluation space and in the
reward space (a gap that widens between them is reward hacking). The best epoch is chosen on validation
in the evaluation space (``valid_metric``), never in the reward space.
"""

import copy
import json
import os
import time

import torch
from recbole.data.interaction import Interaction
from recbole.utils import set_color
from tqdm import tqdm
from transformers import GenerationConfig

from recbole_gen.fitting import atomic_file
from recbole_gen.model.sequential_recommender.genrec import Generation
from recbole_gen.rl.objectives import ADVANTAGE_SCALES, code_entropy, code_kl, code_log_probs, dpo_loss, group_advantages, grpo_loss
from recbole_gen.rl.reward import RewardEnsemble
from recbole_gen.trainer.trainer import GenRecTrainer

ALGORITHMS = ("grpo", "dpo")
FUTURE_FIELD = "rl_future_items"


def future_items(dataset, horizon):
    """``(rows, horizon)``: for each row of a sequential *training* dataset, its next item and the user's
    following ``horizon - 1`` training targets (0 past the user's last training row). RecBole builds the
    rows of each user consecutively in time order (``SequentialDataset.data_augmentation``), so the
    following rows of the same user hold them; items of the validation and test splits are not there."""
    users, targets = dataset.inter_feat[dataset.uid_field], dataset.inter_feat[dataset.iid_field]
    future = torch.zeros(len(users), horizon, dtype=torch.long)
    for offset in range(horizon):
        same_user = torch.zeros(len(users), dtype=torch.bool)
        same_user[: len(users) - offset] = users[offset:] == users[: len(users) - offset]
        future[: len(users) - offset, offset] = torch.where(same_user[: len(users) - offset], targets[offset:], 0)
    return future


class GenRecRLTrainer(GenRecTrainer):
    def __init__(self, config, model):
        for key, allowed in (("rl_algorithm", ALGORITHMS), ("rl_advantage_scale", ADVANTAGE_SCALES)):
            if config[key] not in allowed:
                raise ValueError(f"config key {key!r} = {config[key]!r}: expected one of {allowed}")
        if not 0 < config["rl_copy_code_share"] <= 1:
            raise ValueError(f"config key 'rl_copy_code_share' = {config['rl_copy_code_share']!r}: expected a share of "
                             "image codes in (0, 1] (1 = exact copies only)")
        if not 2 <= config["rl_batch_size"] <= config["train_batch_size"]:
            raise ValueError(f"config key 'rl_batch_size' = {config['rl_batch_size']!r}: expected an integer from 2 (the reward "
                             f"compares each row with the batch's other rows) to train_batch_size = {config['train_batch_size']} "
                             "(each update's rows come from one training batch)")
        if config["rl_group_size"] < 2:
            raise ValueError(f"config key 'rl_group_size' = {config['rl_group_size']!r}: expected an integer of at least 2 (GRPO's "
                             "advantages and DPO's pairs compare the samples of one row)")
        if model.is_diffusion:
            raise ValueError("the RL stage trains the autoregressive generator's code log-probabilities; "
                             "rl_init_checkpoint holds a 'diffusion' GenRec")
        model.freeze_user_encoder = True
        model.user_encoder.requires_grad_(False)
        super().__init__(config, model)
        self.reference = copy.deepcopy(model).requires_grad_(False).eval()  # the supervised policy, frozen
        self.epochs = config["rl_epochs"]
        self.eval_step = 1
        self.group_size = config["rl_group_size"]
        self.generation_config = GenerationConfig(
            do_sample=True, temperature=config["rl_temperature"], top_k=config["rl_top_k"],
            guidance_scale=config["rl_guidance_scale"], max_new_tokens=model.tokenizer.n_tokens,
        )
        self.log = {"steps": [], "validations": []}
        self.rl_step = 0
        self.rows_without_image = 0  # training rows skipped in this epoch
        self._valid_reward_sims = []
        self._training_reward = None

    uses_reward_model = True  # validation also scores the generations in the reward space

    def _build_optimizer(self, **kwargs):
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.Adam(parameters, lr=self.config["rl_learning_rate"])

    def _run_state(self):  # the steps and validations so far, so a resumed run's log is the whole run's
        return {"rl_step": self.rl_step, "log": self.log}

    def _load_run_state(self, run_state):
        if not run_state:
            self.logger.warning("the resume state was written before resume states held the RL log: steps count, "
                                f"and {self.log_file} logs, from the resumed epoch on")
            return
        self.rl_step = run_state["rl_step"]
        self.log = run_state["log"]

    @property
    def log_file(self):
        return os.path.splitext(self.saved_model_file)[0] + "-rl.json"

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if valid_data is not None and self._resume_state is None and not self.log["validations"]:
            self.epoch = -1
            self._valid_epoch(valid_data, show_progress=show_progress)  # step 0: the supervised policy, for the curves
        return super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)

    # -- training ----------------------------------------------------------------------------------
    def training_rows(self, train_data):
        """Batches of ``rl_batch_size`` training rows whose next item has an image, passing over the
        training split as often as needed (rows without an image cannot be rewarded and are counted)."""
        model, size = self.model, self.config["rl_batch_size"]
        dataset = train_data._dataset
        if FUTURE_FIELD not in dataset.inter_feat:
            dataset.inter_feat.update(Interaction({FUTURE_FIELD: future_items(dataset, self.config["rl_reward_horizon"])}))
        while True:
            batches = 0
            for interaction in train_data:
                has_image = model.has_image[interaction[model.POS_ITEM_ID].to(model.has_image.device)].cpu()
                self.rows_without_image += int((~has_image).sum())
                interaction = interaction[torch.nonzero(has_image).flatten()]
                for start in range(0, len(interaction) - size + 1, size):
                    batches += 1
                    yield interaction[start : start + size].to(self.device)
            if not batches:
                raise ValueError(f"no training batch holds rl_batch_size = {size} rows whose next item has an image "
                                 f"({self.rows_without_image} rows without one): lower rl_batch_size or check image_dir")

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self.epoch = epoch_idx
        self.model.train()
        if self.config["rl_reference_refresh"]:
            self.reference.load_state_dict(self.model.state_dict())
        reward_model = self.training_reward(train_data._dataset)
        self.rows_without_image = 0
        steps = self.config["rl_steps_per_epoch"]
        progress = tqdm(total=steps, desc=set_color(f"RL {self.config['rl_algorithm']} epoch {epoch_idx:>3}", "pink"),
                        ncols=110, disable=not show_progress)
        records = []
        for rows in self.training_rows(train_data):
            step = self.dpo_step if self.config["rl_algorithm"] == "dpo" else self.grpo_step
            record = step(rows, reward_model)
            records.append(record)
            self.log_step(record)
            progress.update()
            progress.set_postfix(reward=f"{record['reward_mean']:.4f}", kl=f"{record['kl']:.4f}", copies=f"{record['copy_share']:.2f}")
            if len(records) == steps:
                break
        progress.close()
        seconds = {part: sum(r[f"seconds_{part}"] for r in records) for part in ("sampling", "reward", "update")}
        self.logger.info(
            f"RL epoch {epoch_idx}: {steps} steps, reward {records[0]['reward_mean']:.4f} -> {records[-1]['reward_mean']:.4f}, "
            f"KL {records[-1]['kl']:.4f}, copies {records[-1]['copy_share']:.2f}; time sampling {seconds['sampling']:.1f} s, "
            f"reward {seconds['reward']:.1f} s, update {seconds['update']:.1f} s; {self.rows_without_image} rows skipped "
            "(next item without an image)"
        )
        return sum(r["loss"] for r in records) / len(records)

    def training_reward(self, dataset):
        """What RL steps are rewarded by: the reward model, or a :class:`RewardEnsemble` of ``rl_reward_ensemble``
        reward encoders whose first member is the reward model (built once)."""
        if self._training_reward is None:
            reward_model = self.reward_model(dataset)
            self._training_reward = (RewardEnsemble.from_config(self.config, dataset, first=reward_model)
                                     if self.config["rl_reward_ensemble"] != 1 else reward_model)
        return self._training_reward

    def sample(self, policy, rows):
        """A :class:`Generation` of ``rl_group_size`` samples of ``policy`` per row (rows' samples adjacent)."""
        condition = policy.condition_tokens(rows).repeat_interleave(self.group_size, dim=0)
        uniforms = torch.rand(len(condition), policy.tokenizer.n_tokens, dtype=torch.float64)
        codes = policy.sample_codes(condition, uniforms, self.generation_config)
        return Generation(codes=codes, images=policy.tokenizer.decode(codes))

    def logits(self, policy, rows, codes):
        return policy.code_logits(policy.condition_tokens(rows).repeat_interleave(len(codes) // len(rows), dim=0), codes)

    def rewards(self, reward_model, rows, generation):
        """``(Rewards, copied)`` of a generation for ``rows``: the reward sees the rows' own training targets only
        (their next items and the users' following training items, ``FUTURE_FIELD``); ``copied`` marks the samples
        that share at least ``rl_copy_code_share`` of their codes with one catalog item."""
        copied = self.model.closest_codes(generation.codes)[1] >= self.config["rl_copy_code_share"]
        with torch.no_grad():  # the user encoder is frozen: the reference's and the policy's score alike
            scores = self.reference.user_encoder.full_sort_predict(rows) if reward_model.needs_expectation else None
        return reward_model(generation, copied, rows[FUTURE_FIELD], self.group_size, scores), copied

    def rollout(self, policy, rows, reward_model):
        """``(generation, rewards, copied, seconds)``: ``policy``'s samples for ``rows``, their rewards, which are
        copies, and the seconds spent sampling and rewarding."""
        start = time.perf_counter()
        with torch.no_grad():
            generation = self.sample(policy, rows)
        sampled = time.perf_counter()
        rewards, copied = self.rewards(reward_model, rows, generation)
        return generation, rewards, copied, (sampled - start, time.perf_counter() - sampled)

    def grpo_step(self, rows, reward_model):
        generation, rewards, copied, seconds = self.rollout(self.model, rows, reward_model)
        codes = generation.codes
        rewarded = time.perf_counter()
        advantages, spread = group_advantages(rewards.total.view(len(rows), self.group_size), self.config["rl_advantage_scale"])
        logits = self.logits(self.model, rows, codes)
        with torch.no_grad():
            reference_logits = self.logits(self.reference, rows, codes)
        device = logits.device
        loss, kl = grpo_loss(logits, reference_logits, codes, advantages.flatten().to(device),
                             spread.repeat_interleave(self.group_size).to(device), self.config["rl_kl_weight"],
                             self.config["rl_entropy_weight"])
        self.update(loss)
        return self.record(loss, kl, logits, rewards, copied, zero_spread=1 - spread.float().mean().item(),
                           seconds=(*seconds, time.perf_counter() - rewarded))

    def dpo_step(self, rows, reward_model):
        generation, rewards, copied, seconds = self.rollout(self.reference, rows, reward_model)
        codes = generation.codes
        rewarded = time.perf_counter()
        grouped = rewards.total.view(len(rows), self.group_size)
        keep = torch.nonzero(grouped.max(dim=1).values > grouped.min(dim=1).values).flatten()
        offsets = torch.arange(len(rows)) * self.group_size
        chosen = (offsets + grouped.argmax(dim=1))[keep]
        rejected = (offsets + grouped.argmin(dim=1))[keep]
        pairs = torch.cat([chosen, rejected]).to(codes.device)
        pair_rows = rows[torch.cat([keep, keep]).to(self.device)]
        logits = self.logits(self.model, pair_rows, codes[pairs])
        with torch.no_grad():
            reference_logits = self.logits(self.reference, pair_rows, codes[pairs])
        code_lp = code_log_probs(logits, codes[pairs])
        log_probs = code_lp.sum(dim=1)
        reference_log_probs = code_log_probs(reference_logits, codes[pairs]).sum(dim=1)
        n = len(keep)
        loss = dpo_loss(log_probs[:n], log_probs[n:], reference_log_probs[:n], reference_log_probs[n:], self.config["rl_dpo_beta"])
        if self.config["rl_dpo_sft_weight"]:  # RPO: plus the chosen samples' negative log-likelihood per code
            loss = loss - self.config["rl_dpo_sft_weight"] * code_lp[:n].mean()
        self.update(loss)
        kl = code_kl(logits, reference_logits).mean().detach()
        return self.record(loss, kl, logits, rewards, copied, zero_spread=1 - n / len(rows),
                           seconds=(*seconds, time.perf_counter() - rewarded))

    def update(self, loss):
        self.optimizer.zero_grad()
        loss.backward()
        if self.config["rl_clip_grad_norm"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config["rl_clip_grad_norm"])
        self.optimizer.step()

    def record(self, loss, kl, logits, rewards, copied, zero_spread, seconds):
        grouped = rewards.total.view(-1, self.group_size)
        record = {
            "epoch": self.epoch, "step": self.rl_step, "loss": loss.item(), "kl": kl.item(),
            "entropy": code_entropy(logits.detach()).mean().item(), "reward_mean": rewards.total.mean().item(),
            "reward_group_sd": grouped.std(dim=1, unbiased=False).mean().item(), "zero_spread_share": zero_spread,
            "copy_share": copied.float().mean().item(),
            **{f"reward_{name}": value.mean().item() for name, value in rewards.terms.items()},
            **({"reward_member_sd": rewards.member_sd.mean().item()} if rewards.member_sd is not None else {}),
            **{f"seconds_{part}": value for part, value in zip(("sampling", "reward", "update"), seconds)},
        }
        self.rl_step += 1
        return record

    def log_step(self, record):
        self.log["steps"].append(record)
        for name, value in record.items():
            if name not in ("epoch", "step"):
                self.tensorboard.add_scalar(f"rl/{name}", value, record["step"])

    # -- validation --------------------------------------------------------------------------------
    def eval_generation(self, interaction):
        generation, samples = super().eval_generation(interaction)
        if self.phase == "valid" and not self._show_ceiling:
            reward_model = self._reward_model
            targets = interaction[self.model.ITEM_ID].cpu().repeat_interleave(samples)
            self._valid_reward_sims.append(reward_model.target_sim(reward_model.embed(generation.images), targets))
        return generation, samples

    def _valid_epoch(self, valid_data, show_progress=False):
        self._valid_reward_sims = []
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        reward_space = torch.cat(self._valid_reward_sims).mean().item()
        self.tensorboard.add_scalar("rl/valid_targetsim_reward_space", reward_space, self.epoch)
        self.log["validations"].append({"epoch": self.epoch, "step": self.rl_step, "targetsim_reward_space": reward_space,
                                        **{k: float(v) for k, v in result.items()}})
        self.logger.info(f"validation TargetSim in the reward space: {reward_space:.4f}")
        self.save_log()
        return score, result

    def save_log(self):
        if not self._writes_files():
            return
        with atomic_file(self.log_file) as staging, open(staging, "w") as f:
            json.dump({"init_checkpoint": self.config["rl_init_checkpoint"], **self.log}, f, indent=1)
