"""A lean GPT-2 forward for decoding: the HF model's own weights, a preallocated KV cache.

``GPT2LMHeadModel.forward`` is generic: per token it builds masks and a ``DynamicCache``
that grows by ``torch.cat`` (copying every layer's keys and values), and runs ~15 module
calls per layer. For batch decoding of a few tokens per step that overhead is most of the
time on a CPU. ``LeanGPT2`` runs the same arithmetic (layer norms, ``addmm`` with the
``Conv1D`` weights, ``scaled_dot_product_attention``, the model's activation) straight
over the model's parameters and writes new keys/values in place into caller-owned buffers
``[B, heads, capacity, head_dim]``. Its hidden states equal the HF model's within float
rounding (the tests hold logits to 1e-4 of a full recompute).

It applies only to a plain ``GPT2LMHeadModel`` (the stock classes, no cross-attention, no
upcast/reordered attention, an activation it knows, no forward hooks, real parameters);
``LeanGPT2.supports`` says so and callers fall back to the HF forward otherwise, and in
training mode (dropout) as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

_TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    **dict.fromkeys(_TANH_GELU, _tanh_gelu),
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    return _ACTIVATIONS.get(name)


@dataclass(frozen=True)
class _Layer:
    ln_1: tuple[torch.Tensor, torch.Tensor]
    qkv: tuple[torch.Tensor, torch.Tensor]  # (bias [3E], weight [E, 3E]) of Conv1D
    proj: tuple[torch.Tensor, torch.Tensor]
    ln_2: tuple[torch.Tensor, torch.Tensor]
    fc: tuple[torch.Tensor, torch.Tensor]
    fc_proj: tuple[torch.Tensor, torch.Tensor]
    scale: float


def _conv(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return module.bias, module.weight


def _norm(module: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return module.weight, module.bias


class LeanGPT2:
    """Forward passes over a ``GPT2LMHeadModel``'s parameters with an external KV cache.

    The parameter objects are held (not their data), so ``model.to(...)`` stays visible.
    """

    def __init__(self, model: Any) -> None:
        if not self.supports(model):
            raise ValueError("LeanGPT2 needs a stock GPT2LMHeadModel")
        config = model.config
        body = model.transformer
        self.model = model
        self.width = int(config.n_embd)
        self.heads = int(config.n_head)
        self.head_dim = self.width // self.heads
        self.eps = float(config.layer_norm_epsilon)
        act = _activation(config.activation_function)
        assert act is not None  # supports() checked it
        self.act = act
        self.wte = body.wte.weight
        self.wpe = body.wpe.weight
        self.ln_f = _norm(body.ln_f)
        self.layers: list[_Layer] = []
        for index, block in enumerate(body.h):
            scale = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
            if config.scale_attn_by_inverse_layer_idx:
                scale /= float(index + 1)
            self.layers.append(
                _Layer(
                    ln_1=_norm(block.ln_1),
                    qkv=_conv(block.attn.c_attn),
                    proj=_conv(block.attn.c_proj),
                    ln_2=_norm(block.ln_2),
                    fc=_conv(block.mlp.c_fc),
                    fc_proj=_conv(block.mlp.c_proj),
                    scale=scale,
                )
            )

    @staticmethod
    def supports(model: Any) -> bool:
        """True for a stock ``GPT2LMHeadModel`` this class computes exactly like HF does."""
        try:
            from transformers import GPT2LMHeadModel
            from transformers.models.gpt2 import modeling_gpt2 as gpt2
        except ImportError:  # pragma: no cover - transformers is a dependency of the engine
            return False
        if type(model) is not GPT2LMHeadModel:
            return False
        config = model.config
        if (
            getattr(config, "add_cross_attention", False)
            or getattr(config, "reorder_and_upcast_attn", False)
            or _activation(getattr(config, "activation_function", "")) is None
            or config.n_embd % config.n_head
        ):
            return False
        body = model.transformer
        if type(body) is not gpt2.GPT2Model or type(body.ln_f) is not torch.nn.LayerNorm:
            return False
        for module in model.modules():  # hooks (offloading, adapters) would be skipped
            if module._forward_hooks or module._forward_pre_hooks:
                return False
        if any(p.device.type == "meta" for p in model.parameters()):
            return False
        for block in body.h:
            if (
                type(block) is not gpt2.GPT2Block
                or type(block.attn) is not gpt2.GPT2Attention
                or type(block.mlp) is not gpt2.GPT2MLP
                or type(block.ln_1) is not torch.nn.LayerNorm
                or type(block.ln_2) is not torch.nn.LayerNorm
            ):
                return False
        return True

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def new_cache(self, batch: int, capacity: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Empty key and value buffers ``[batch, heads, capacity, head_dim]`` per layer."""
        shape = (batch, self.heads, capacity, self.head_dim)
        like = self.wte
        keys = [like.new_zeros(shape) for _ in self.layers]
        values = [like.new_zeros(shape) for _ in self.layers]
        return keys, values

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        start: int,
        mask: torch.Tensor | None,
        causal: bool = False,
    ) -> torch.Tensor:
        """Final-norm hidden state of each row's last position, ``[B, width]``.

        ids, positions: ``[B, w]``; the new keys/values go to slots ``start:start + w`` of
        the buffers (which must hold them). mask: bool ``[B, 1, w, start + w]`` (True =
        attend) or None when every query may see every slot up to itself: then ``causal``
        says whether the w new tokens must be causal among themselves (a prefill from
        slot 0, the only case SDPA's top-left causal alignment gets right); for w == 1 it
        does not matter.
        """
        batch, width = ids.shape
        end = start + width
        if causal and (start or mask is not None):
            raise ValueError("causal is for a prefill from slot 0 without a mask")
        x = F.embedding(ids, self.wte) + F.embedding(positions, self.wpe)
        heads, dim, size = self.heads, self.head_dim, self.width
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            h = F.layer_norm(x, (size,), *layer.ln_1, self.eps)
            qkv = torch.addmm(layer.qkv[0], h.reshape(-1, size), layer.qkv[1])
            qkv = qkv.view(batch, width, 3, heads, dim)
            keys[index][:, :, start:end].copy_(qkv[:, :, 1].transpose(1, 2))
            values[index][:, :, start:end].copy_(qkv[:, :, 2].transpose(1, 2))
            query = qkv[:, :, 0].transpose(1, 2)
            layer_mask = mask
            is_causal = causal and width > 1 and mask is None
            if index == last and width > 1:
                # only the last position's output is used: attend for that query alone
                query = query[:, :, -1:]
                x = x[:, -1:]
                layer_mask = None if mask is None else mask[:, :, -1:]
                is_causal = False  # the last query sees every slot up to itself
            attn = F.scaled_dot_product_attention(
                query,
                keys[index][:, :, :end],
                values[index][:, :, :end],
                attn_mask=layer_mask,
                is_causal=is_causal,
                scale=layer.scale,
            )
            rows = attn.shape[2]
            attn = attn.transpose(1, 2).reshape(batch * rows, size)
            x = x + torch.addmm(layer.proj[0], attn, layer.proj[1]).view(batch, rows, size)
            h = F.layer_norm(x, (size,), *layer.ln_2, self.eps)
            h = self.act(torch.addmm(layer.fc[0], h.reshape(batch * rows, size), layer.fc[1]))
            x = x + torch.addmm(layer.fc_proj[0], h, layer.fc_proj[1]).view(batch, rows, size)
        return F.layer_norm(x[:, -1], (size,), *self.ln_f, self.eps)
