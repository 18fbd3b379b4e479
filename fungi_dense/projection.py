"""Random projections of per-token linear-layer gradients ``G_t = g_t ⊗ [a_t; 1]`` to ``k`` dims.

``g_t (D_out)`` is the loss gradient at the layer's output for token ``t`` and ``a_t (D_in)`` its
input, so ``G_t`` is ``D_out × (D_in + 1)`` (weight and bias). Neither projection ever holds ``G_t``
for a whole batch:

* :class:`DenseProjection` — the paper's: ``vec(G_t) · R / √k`` with ``R`` a seeded ±1 matrix of
  ``D_out (D_in + 1) × k``; ``G`` is materialised for a chunk of tokens at a time. ``O(D² k)`` per token.
* :class:`KhatriRaoProjection` — fast: row ``m`` of the projection is ``r_m ⊗ q_m`` with seeded ±1
  vectors, so ``(g_t · r_m)(ã_t · q_m) / √k`` projects the two factors separately. ``O(D k)`` per token;
  inner products ``⟨G_t, G_u⟩_F`` are preserved in expectation.
"""

from __future__ import annotations

import torch


def _signs(rows: int, cols: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A seeded ``(rows, cols)`` float32 matrix of ±1 (drawn on the CPU: same on every device)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (rows, cols), generator=g, dtype=torch.int8) * 2 - 1).to(device, torch.float32)


def _with_bias_input(inputs: torch.Tensor) -> torch.Tensor:
    return torch.cat([inputs, torch.ones_like(inputs[..., :1])], dim=-1)


class DenseProjection:
    """``vec(g ⊗ [a; 1]) · R / √k`` with a seeded ±1 matrix ``R`` of ``(D_out·(D_in+1), k)``.

    Args:
        out_features: ``D_out`` of the differentiated layer.
        in_features: ``D_in``.
        dim: ``k``.
        seed: seed of ``R``.
        chunk: tokens whose ``G_t`` are materialised together.
    """

    kind = "dense"

    def __init__(self, out_features: int, in_features: int, dim: int, seed: int = 0, chunk: int = 128):
        self.out_features, self.in_features, self.dim, self.seed, self.chunk = out_features, in_features, dim, seed, chunk
        self._matrix: torch.Tensor | None = None

    def matrix(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``R / √k``: ``(D_out·(D_in+1), k)``, generated on first use and kept."""
        if self._matrix is None or self._matrix.device != torch.device(device):
            rows = self.out_features * (self.in_features + 1)
            self._matrix = _signs(rows, self.dim, self.seed, device) / self.dim**0.5
        return self._matrix

    def __call__(self, output_grads: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``output_grads (T, D_out)``, ``inputs (T, D_in)`` → projected gradients ``(T, k)``."""
        r = self.matrix(output_grads.device)
        ones_in = _with_bias_input(inputs)
        out = torch.empty(len(output_grads), self.dim, device=output_grads.device)
        for start in range(0, len(output_grads), self.chunk):
            sl = slice(start, start + self.chunk)
            per_token = torch.einsum("ti,tj->tij", output_grads[sl], ones_in[sl]).flatten(1)  # (chunk, D_out·(D_in+1))
            out[sl] = per_token @ r
        return out

    def metadata(self) -> dict:
        return {"projection": self.kind, "projection_dim": self.dim, "projection_seed": self.seed}


class KhatriRaoProjection:
    """``(g · R_out) ⊙ ([a; 1] · R_in) / √k`` with seeded ±1 ``R_out (D_out, k)`` and ``R_in (D_in+1, k)``."""

    kind = "fast"

    def __init__(self, out_features: int, in_features: int, dim: int, seed: int = 0):
        self.out_features, self.in_features, self.dim, self.seed = out_features, in_features, dim, seed
        self._factors: tuple[torch.Tensor, torch.Tensor] | None = None

    def factors(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        if self._factors is None or self._factors[0].device != torch.device(device):
            self._factors = (_signs(self.out_features, self.dim, self.seed, device),
                             _signs(self.in_features + 1, self.dim, self.seed + 1, device))
        return self._factors

    def __call__(self, output_grads: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """``output_grads (T, D_out)``, ``inputs (T, D_in)`` → projected gradients ``(T, k)``."""
        r_out, r_in = self.factors(output_grads.device)
        return (output_grads @ r_out) * (_with_bias_input(inputs) @ r_in) / self.dim**0.5

    def metadata(self) -> dict:
        return {"projection": self.kind, "projection_dim": self.dim, "projection_seed": self.seed}


PROJECTIONS = {"dense": DenseProjection, "fast": KhatriRaoProjection}
