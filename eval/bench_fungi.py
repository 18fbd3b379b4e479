#!/usr/bin/env python
"""Cost of dense FUNGI features against plain tokens, and accuracy of the gradient projections.

In one run, on the same images and device, each mode runs in its own child process (so each peak
memory is its own): time per image for tokens only, FUNGI with the paper's dense projection, and
FUNGI with the fast Khatri-Rao projection, their ratios to tokens only, and peak resident memory.
Then, on per-patch gradients of the same images, the mean absolute error between exact cosine
similarities of the gradients ``g_t ⊗ [a_t; 1]`` and those of each projection.

    python eval/bench_fungi.py --out runs/bench_fungi.json

Weights do not change speed; pass --weights for the projection errors on real-model gradients.
"""

from __future__ import annotations

import multiprocessing as mp
import sys

import harness
import torch
import torch.nn.functional as F
from einops import rearrange

from fungi_dense.features import FungiConfig, FungiFeatures
from fungi_dense.projection import DenseProjection, KhatriRaoProjection
from fungi_dense.support import SupportMemory
from fungi_dense.variants import DEFAULT_VARIANT, VARIANTS
from hummingbird.models.backbones import encoder_from_weights_file
from hummingbird.models.features import TokenFeatures
from hummingbird.models.precision import PRECISIONS, resolve_precision

MODES = ("tokens", "fungi-dense", "fungi-fast")


def _images(count: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth random images (low-frequency noise upsampled) rather than white noise
    low = torch.rand(count, 3, size // 32, size // 32, generator=g)
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def _support(encoder, args) -> SupportMemory:
    """Plain tokens of --support-images other images, half of their patches kept."""
    tokens = F.normalize(encoder(_images(args.support_images, args.input_size, args.seed + 1).to(args.device)), dim=-1)
    flat = rearrange(tokens.cpu(), "b h w d -> b (h w) d")
    keep = flat.shape[1] // 2
    picks = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(args.seed))[:keep]
    owners = torch.arange(len(flat), dtype=torch.int32).repeat_interleave(keep)
    return SupportMemory(flat[:, picks].reshape(-1, flat.shape[-1]), owners,
                         [f"support{i}" for i in range(len(flat))], {})


def _features(mode: str, args):
    encoder = encoder_from_weights_file(args.backbone, args.weights, precision=args.precision).to(args.device)
    if mode == "tokens":
        return TokenFeatures(encoder)
    projection = mode.split("-")[1]
    return FungiFeatures(encoder, _support(encoder, args),
                         FungiConfig(projection=projection, objective_variant=args.objective_variant))


def _time_mode(mode: str, args, queue) -> None:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    features = _features(mode, args)
    images = _images(args.images, args.input_size, args.seed).to(args.device)
    features(images[:1])  # warm-up (and, for dense, generating the projection matrix)
    with harness.timed(args.device) as clock:
        for start in range(0, len(images), args.batch_size):
            features(images[start:start + args.batch_size])
    queue.put({"mode": mode, "seconds_per_image": clock.seconds / len(images), "dim": features.dim,
               "peak_rss_gib": harness.peak_rss_gib()})


def projection_errors(args) -> dict:
    """Mean |cos_exact − cos_projected| over all patch pairs of --error-images images."""
    features = _features("fungi-fast", args)
    images = _images(args.error_images, args.input_size, args.seed + 2).to(args.device)
    _, inputs, (g,) = features.gradients(images)
    g, a = g.reshape(-1, g.shape[-1]).cpu(), inputs.reshape(-1, inputs.shape[-1]).cpu()
    a_tilde = torch.cat([a, torch.ones(len(a), 1)], 1)
    gram = (g @ g.T) * (a_tilde @ a_tilde.T)  # <g_t ⊗ ã_t, g_u ⊗ ã_u>_F without forming the outer products
    norms = gram.diag().sqrt()
    exact = gram / norms[:, None] / norms[None]
    off_diagonal = ~torch.eye(len(g), dtype=torch.bool)
    out = {"patches": len(g), "exact_cosine_std": float(exact[off_diagonal].std())}
    d_out, d_in, k = g.shape[1], a.shape[1], features.projection_dim
    for name, projection in (("dense", DenseProjection(d_out, d_in, k)), ("fast", KhatriRaoProjection(d_out, d_in, k))):
        p = F.normalize(projection(g, a), dim=1)
        out[f"{name}_mean_abs_cosine_error"] = float((p @ p.T - exact)[off_diagonal].abs().mean())
    return out


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    harness.add_backbone_args(p, backbone="dino_vits16", weights="random")
    p.add_argument("--input-size", type=int, default=448)
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--support-images", type=int, default=16, help="images in the support memory")
    p.add_argument("--error-images", type=int, default=2, help="images for the projection-error measurement")
    p.add_argument("--device", default=harness.default_device())
    p.add_argument("--objective-variant", choices=list(VARIANTS), default=DEFAULT_VARIANT,
                   help="FUNGI InfoNCE form (default %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="backbone (and backward pass) precision of every mode (auto: as the CLI's)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    harness.add_out_arg(p, "runs/bench_fungi.json")
    args = p.parse_args(argv)

    ctx = mp.get_context("spawn")
    rows = {}
    for mode in MODES:
        queue = ctx.Queue()
        child = ctx.Process(target=_time_mode, args=(mode, args, queue))
        child.start()
        rows[mode] = queue.get()
        child.join()
    base = rows["tokens"]["seconds_per_image"]
    for mode in MODES:
        rows[mode]["ratio_to_tokens"] = rows[mode]["seconds_per_image"] / base
        print(f"{mode:>12}: {rows[mode]['seconds_per_image']:.3f} s/image ({rows[mode]['ratio_to_tokens']:.2f}x tokens), "
              f"{rows[mode]['dim']} dims, peak RSS {rows[mode]['peak_rss_gib']:.2f} GiB")
    errors = projection_errors(args)
    print(f"projection error on {errors['patches']} patch gradients (exact cosine std {errors['exact_cosine_std']:.3f}): "
          f"dense {errors['dense_mean_abs_cosine_error']:.4f}, fast {errors['fast_mean_abs_cosine_error']:.4f} "
          f"mean |Δcos|")
    env = harness.environment(args.device)
    report = {"machine": {"platform": env["platform"], "device": args.device, "torch": env["torch"],
                          "threads": args.threads or torch.get_num_threads(), "processor": env["cpu"]},
              "precision": resolve_precision(args.precision, args.device),
              "backbone": args.backbone, "objective_variant": args.objective_variant, "input_size": args.input_size, "images": args.images,
              "batch_size": args.batch_size, "support_images": args.support_images, "modes": rows,
              "projection_errors": errors}
    harness.write_results(args.out, report, args, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
