"""Sequence classifier: Embedding, (bi-)LSTM over packed sequences, final states or attention."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from base import BaseModel
from model.weight_init import freeze as freeze_parts
from model.weight_init import init_weights


def load_embedding(path: str, vocab_size: int, embedding_dim: int) -> torch.Tensor:
    """A (vocab_size, embedding_dim) float tensor saved with torch.save."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"embedding_path: file not found: {path}")
    try:
        weight = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to fix
        raise ValueError(f"embedding_path: {path} is not a tensor saved with torch.save "
                         f"({type(e).__name__})") from None
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (vocab_size, embedding_dim):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"embedding_path: {path} holds {shape}, expected a tensor of shape "
                         f"({vocab_size}, {embedding_dim}) (vocab_size, embedding_dim)")
    return weight.float()


class AdditiveAttention(nn.Module):
    """score_t = v . tanh(W h_t + b); softmax over the valid steps only; returns sum_t a_t h_t."""

    def __init__(self, in_features: int, attention_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_features, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, outputs: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """outputs (B, T, F), mask (B, T) True at real tokens -> context (B, F), weights (B, T)."""
        scores = self.score(torch.tanh(self.proj(outputs))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), outputs).squeeze(1), weights


class LSTMClassifier(BaseModel):
    """Classifies padded token sequences: forward(tokens (B, T) int64, lengths (B,)).

    The embedded batch is packed with pack_padded_sequence, so padding never
    enters the recurrence. `pooling` chooses what the classifier sees:
      'final':     the last layer's final hidden states from h_n, forward and
                   backward concatenated when bidirectional;
      'attention': additive attention over the last layer's outputs at every
                   step, with padded steps masked out of the softmax.
    Either way, padding a batch further does not change its outputs.
    The embedding can start from a tensor file (`embedding_path`, shape
    (vocab_size, embedding_dim)) and be kept fixed (`freeze_embedding`).
    Token id `padding_idx` (0) is padding.
    """

    def __init__(self, vocab_size: int, out_features: int, embedding_dim: int = 32,
                 hidden_size: int = 64, num_layers: int = 1, bidirectional: bool = True,
                 pooling: str = "attention", attention_dim: int = 64, dropout: float = 0.0,
                 padding_idx: int = 0, embedding_path: str | None = None,
                 freeze_embedding: bool = False, init: str = "default",
                 freeze: list[str] | None = None):
        super().__init__(input_shape=None)  # token ids are not standardized
        if pooling not in ("final", "attention"):
            raise ValueError(f"pooling must be 'final' or 'attention', got {pooling!r}")
        self.pooling = pooling
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional,
                            dropout=dropout if num_layers > 1 else 0.0)
        features = hidden_size * self.num_directions
        self.attention = AdditiveAttention(features, attention_dim) if pooling == "attention" \
            else None
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(features, out_features)
        init_weights(self, init)
        if embedding_path is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(load_embedding(embedding_path, vocab_size,
                                                           embedding_dim))
        if freeze_embedding:
            self.embedding.weight.requires_grad_(False)
        freeze_parts(self, freeze)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """(outputs (B, T, F) zero past each length, h_n (layers*directions, B, H))."""
        lengths = lengths.to("cpu", torch.int64)  # pack_padded_sequence wants CPU int64
        packed = pack_padded_sequence(self.embedding(tokens), lengths, batch_first=True,
                                      enforce_sorted=False)
        packed_out, (h_n, _) = self.lstm(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True)
        return outputs, h_n

    def final_states(self, h_n: torch.Tensor) -> torch.Tensor:
        """The last layer's final states, (B, directions*H): forward's, then backward's."""
        batch, hidden = h_n.shape[1], h_n.shape[2]
        last = h_n.view(self.num_layers, self.num_directions, batch, hidden)[-1]
        return torch.cat(list(last), dim=1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, h_n = self.encode(tokens, lengths)
        if self.attention is None:
            features = self.final_states(h_n)
        else:
            steps = torch.arange(outputs.shape[1], device=outputs.device)
            mask = steps.unsqueeze(0) < lengths.to(outputs.device).unsqueeze(1)
            features, _ = self.attention(outputs, mask)
        return self.output(self.dropout(features))
