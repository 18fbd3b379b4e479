"""Per-token factors of a linear layer's gradient: its input ``a_t`` and the loss gradient ``g_t``
at its output, for every token of a frozen ViT.

The layer's output is detached and made a leaf in a forward hook, so autograd records only the
computation *after* the layer (for ``blocks[-1].attn.proj``: residual, MLP, final norm) and one
backward pass gives ``g`` for all tokens. The per-token gradient of the layer's weight and bias is
then ``g_t ⊗ [a_t; 1]``; it is never formed here.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from hummingbird.errors import ConfigError, option
from hummingbird.models.backbones import PatchEncoder


def resolve_layer(encoder: PatchEncoder, path: str) -> nn.Linear:
    """``"blocks.-1.attn.proj"`` → that ``nn.Linear`` of the encoder's ViT (negative indices allowed)."""
    module: nn.Module = encoder.model
    for part in path.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part, None)
        if module is None:
            raise ConfigError(f"{option('fungi_layer', path)}: no such module in {encoder.name}")
    if not isinstance(module, nn.Linear):
        raise ConfigError(f"{option('fungi_layer', path)} is a {type(module).__name__}, not a Linear layer")
    return module


@contextmanager
def leaf_output(layer: nn.Linear) -> Iterator[dict]:
    """While active, ``layer``'s forward stores its input as ``"input"`` and returns its output as a
    fresh leaf ``"output"`` that requires grad."""
    store: dict = {}

    def hook(module, args, output):
        store["input"] = args[0].detach()
        store["output"] = output.detach().requires_grad_(True)
        return store["output"]

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def tokens_and_layer_grads(encoder: PatchEncoder, layer: nn.Linear, images: torch.Tensor,
                           loss_fn: Callable[..., list[torch.Tensor]], with_prefix: bool = False):
    """Run ``encoder`` on ``images`` and differentiate each loss of ``loss_fn`` at ``layer``'s output.

    Args:
        encoder: frozen patch encoder.
        layer: a linear layer inside it, before the returned tokens.
        images: ``(B, 3, H, W)`` in ``[0, 1]``.
        loss_fn: patch tokens ``(B, h, w, D)`` (and, with ``with_prefix``, the prefix tokens
            ``(B, n, D)``, class token first) → list of scalar losses (sums of per-image losses).
        with_prefix: also pass the prefix tokens, so a loss can use the class token.

    Returns:
        tokens ``(B, h, w, D)`` (detached), layer inputs ``(B, P, D_in)`` and, per loss, layer output
        gradients ``(B, P, D_out)`` — patch tokens only (prefix tokens' rows dropped); float32, or
        float64 for a float64 model and images.
    """
    encoder.check_input_size(images.shape[-2], images.shape[-1])
    prefix = encoder.num_prefix_tokens
    with torch.enable_grad(), leaf_output(layer) as store, encoder.autocast():
        if with_prefix:
            tokens, prefix_tokens = encoder.tokens_and_prefix_from_normalised(encoder.normalise(images))
        else:
            tokens = encoder.tokens_from_normalised(encoder.normalise(images))
        if "output" not in store:
            raise ConfigError("the differentiated layer is not on the path to the returned tokens")
        dtype = torch.float64 if tokens.dtype == torch.float64 else torch.float32
        losses = loss_fn(tokens.to(dtype), prefix_tokens.to(dtype)) if with_prefix else loss_fn(tokens.to(dtype))
        grads = []
        for i, loss in enumerate(losses):
            (g,) = torch.autograd.grad(loss, store["output"], retain_graph=i < len(losses) - 1)
            grads.append(g[:, prefix:].to(dtype))
    return tokens.detach().to(dtype), store["input"][:, prefix:].to(dtype), grads
