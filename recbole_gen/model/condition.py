"""The condition: a user embedding (and the user's last history images) as soft tokens for the generator.

``n_cond_tokens`` tokens come from the user embedding; one more token per history image (its image
codes' generator embeddings, mean-pooled and projected), as "Generate, Not Recommend" feeds the
history images to the LMM. A learned null condition replaces a user's tokens with probability
``cond_dropout_prob`` in training, which is what classifier-free guidance samples against.
"""

import torch
from torch import nn


class UserCondition(nn.Module):
    def __init__(self, user_dim, hidden_size, n_cond_tokens, n_history_images):
        super().__init__()
        self.n_cond_tokens, self.n_history_images, self.hidden_size = n_cond_tokens, n_history_images, hidden_size
        self.user_projection = nn.Sequential(
            nn.Linear(user_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, n_cond_tokens * hidden_size)
        )
        self.history_projection = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.null = nn.Parameter(torch.randn(self.n_tokens, hidden_size) * 0.02)

    @property
    def n_tokens(self):
        return self.n_cond_tokens + self.n_history_images

    def forward(self, user_embedding, history_embeds=None, history_mask=None):
        """Condition tokens ``(B, n_tokens, hidden)``.

        ``history_embeds`` ``(B, n_history_images, hidden)``: pooled image embeddings of the last history
        items, oldest first; ``history_mask`` ``(B, n_history_images)`` is False where a short history
        has no item (those slots take the null condition's token).
        """
        batch = len(user_embedding)
        tokens = self.user_projection(user_embedding).view(batch, self.n_cond_tokens, self.hidden_size)
        if self.n_history_images:
            history = self.history_projection(history_embeds)
            null_history = self.null[self.n_cond_tokens :].unsqueeze(0).expand_as(history)
            history = torch.where(history_mask.unsqueeze(-1), history, null_history)
            tokens = torch.cat([tokens, history], dim=1)
        return self.norm(tokens)

    def null_condition(self, batch):
        return self.null.unsqueeze(0).expand(batch, -1, -1)

    def drop(self, tokens, probability, generator=None):
        """Replace each row by the null condition with ``probability`` (training only)."""
        if probability <= 0:
            return tokens
        dropped = torch.rand(len(tokens), device=tokens.device, generator=generator) < probability
        return torch.where(dropped.view(-1, 1, 1), self.null_condition(len(tokens)), tokens)
