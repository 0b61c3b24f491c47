"""Read only the attention rows TCAP needs, while the model runs its normal fused attention.

`output_attentions=True` with eager attention materialises L x H x T x T weights; TCAP needs
one row per head and layer. A function registered with transformers' attention interface
calls the stock SDPA forward for the output and computes softmax(q_row K^T * scale + mask_row)
for the requested rows only (q and k arrive after rotary embedding; k is not yet repeated
for grouped-query heads).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "tcap_rows"
_ACTIVE: contextvars.ContextVar["RowCapture | None"] = contextvars.ContextVar("tcap_row_capture", default=None)


class RowCapture:
    """Collects, per decoder layer, the attention rows at `rows` (one position per batch item)."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows
        self.weights: dict[int, torch.Tensor] = {}  # layer -> (B, H, S) float32
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def _rows_on(self, device: torch.device) -> torch.Tensor:
        """The row positions on `device`, copied once per forward: a host-to-device copy in every
        layer would make the CPU wait for the GPU there, and the GPU then idles between layers."""
        if device not in self._on_device:
            self._on_device[device] = self.rows.to(device)
        return self._on_device[device]

    def add(self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
            scaling: float | None) -> None:
        batch, n_heads, _, head_dim = query.shape
        kv_heads = key.shape[1]
        rows = self._rows_on(query.device)
        items = torch.arange(batch, device=query.device)
        # grouped-query heads read their shared key without repeating it: (B, KV, group, d) x (B, KV, S, d)
        q = query[items, :, rows].float().view(batch, kv_heads, n_heads // kv_heads, head_dim)
        scale = scaling if scaling is not None else head_dim ** -0.5
        scores = torch.matmul(q, key.float().transpose(-1, -2)).view(batch, n_heads, -1) * scale
        if mask is None:  # SDPA skipped the mask: plain causal attention
            positions = torch.arange(scores.shape[-1], device=query.device)
            allowed = positions[None, :] <= rows[:, None]
            scores = scores.masked_fill(~allowed[:, None, :], float("-inf"))
        else:
            row_mask = mask[items, :, rows]  # (B, 1 or H, S)
            if row_mask.dtype == torch.bool:
                scores = scores.masked_fill(~row_mask, float("-inf"))
            else:
                scores = scores + row_mask.float()
        self.weights[layer] = torch.softmax(scores, dim=-1)


def _rows_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    capture = _ACTIVE.get()
    if capture is not None:
        capture.add(module.layer_idx, query, key, attention_mask, scaling)
    return output, None


AttentionInterface.register(ATTENTION_NAME, _rows_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # without it the function gets no mask


def use_row_attention(model) -> None:
    """Switch the language model to the row-capturing attention; the vision tower stays on SDPA."""
    if model.config.get_text_config()._attn_implementation == ATTENTION_NAME:
        return
    sub_configs = set(getattr(model.config, "sub_configs", {}) or {})
    if "text_config" in sub_configs:
        mapping = {name: "sdpa" for name in sub_configs if name.endswith("config")}
        mapping["text_config"] = ATTENTION_NAME
        model.set_attn_implementation(mapping)
    else:
        model.set_attn_implementation(ATTENTION_NAME)


@contextmanager
def capture_rows(rows: torch.Tensor):
    """Within this block, every row-attention call records the rows at `rows`."""
    capture = RowCapture(rows)
    token = _ACTIVE.set(capture)
    try:
        yield capture
    finally:
        _ACTIVE.reset(token)
