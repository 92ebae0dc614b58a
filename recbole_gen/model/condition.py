"""The condition: a user embedding (and the user's last history images) as soft tokens for the generator.

``n_cond_tokens`` tokens come from the user embedding; one more token per history image (its image
codes' generator embeddings, mean-pooled and projected), as "Generate, Not Recommend" feeds the
history images to the LMM; ``n_instruction_tokens`` more from a request's instruction (its text
embedding, :mod:`recbole_gen.model.instructor`), the null condition's tokens where a row has none. A
learned null condition replaces a user's tokens with probability ``cond_dropout_prob`` in training,
which is what classifier-free guidance samples against.
"""

import torch
from torch import nn


def condition_length(n_cond_tokens, n_history_images, n_instruction_tokens=0):
    """How many condition tokens a :class:`UserCondition` of these settings writes (the generator's
    sequence budget counts them before the condition exists)."""
    return n_cond_tokens + n_history_images + n_instruction_tokens


class UserCondition(nn.Module):
    def __init__(self, user_dim, hidden_size, n_cond_tokens, n_history_images, n_instruction_tokens=0, instruction_dim=0):
        super().__init__()
        self.n_cond_tokens, self.n_history_images, self.hidden_size = n_cond_tokens, n_history_images, hidden_size
        self.n_instruction_tokens = n_instruction_tokens
        self.user_projection = nn.Sequential(
            nn.Linear(user_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, n_cond_tokens * hidden_size)
        )
        self.history_projection = nn.Linear(hidden_size, hidden_size)
        if n_instruction_tokens:
            self.instruction_projection = nn.Linear(instruction_dim, n_instruction_tokens * hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.null = nn.Parameter(torch.randn(self.n_tokens, hidden_size) * 0.02)

    @property
    def n_tokens(self):
        return condition_length(self.n_cond_tokens, self.n_history_images, self.n_instruction_tokens)

    def forward(self, user_embedding, history_embeds=None, history_mask=None, instruction=None):
        """Condition tokens ``(B, n_tokens, hidden)``.

        ``history_embeds`` ``(B, n_history_images, hidden)``: pooled image embeddings of the last history
        items, oldest first; ``history_mask`` ``(B, n_history_images)`` is False where a short history
        has no item (those slots take the null condition's token). ``instruction`` ``(B, instruction_dim)``:
        each row's instruction embedding, a row of zeros (or None for all) where a row has no instruction.
        """
        batch = len(user_embedding)
        tokens = self.user_projection(user_embedding).view(batch, self.n_cond_tokens, self.hidden_size)
        start = self.n_cond_tokens
        if self.n_history_images:
            history = self.history_projection(history_embeds)
            null_history = self.null[start : start + self.n_history_images].unsqueeze(0).expand_as(history)
            history = torch.where(history_mask.unsqueeze(-1), history, null_history)
            tokens = torch.cat([tokens, history], dim=1)
            start += self.n_history_images
        if self.n_instruction_tokens:
            null_instruction = self.null[start:].unsqueeze(0).expand(batch, -1, -1)
            if instruction is None:
                instruction_tokens = null_instruction
            else:
                projected = self.instruction_projection(instruction).view(batch, self.n_instruction_tokens, self.hidden_size)
                given = instruction.abs().sum(dim=1) > 0
                instruction_tokens = torch.where(given.view(-1, 1, 1), projected, null_instruction)
            tokens = torch.cat([tokens, instruction_tokens], dim=1)
        return self.norm(tokens)

    def null_condition(self, batch):
        return self.null.unsqueeze(0).expand(batch, -1, -1)

    def drop(self, tokens, probability, generator=None):
        """Replace each row by the null condition with ``probability`` (training only)."""
        if probability <= 0:
            return tokens
        dropped = torch.rand(len(tokens), device=tokens.device, generator=generator) < probability
        return torch.where(dropped.view(-1, 1, 1), self.null_condition(len(tokens)), tokens)
