"""How close a result is to the large model alone: PSNR and SSIM on the decoded images (kornia's, which
ComfyUI ships), averaged over images and frames, and the relative L2 distance of the latents."""

from __future__ import annotations

import kornia.metrics
import torch


def image_metrics(images: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """(PSNR dB, SSIM) of IMAGE batches [N, H, W, 3] in 0..1, the mean over the N images (or frames);
    PSNR is inf where they are identical."""
    x, y = (t.movedim(-1, 1).float().clamp(0, 1) for t in (images, reference))
    psnr = torch.stack([kornia.metrics.psnr(a[None], b[None], max_val=1.0) for a, b in zip(x, y)]).mean()
    ssim = kornia.metrics.ssim(x, y, window_size=11, max_val=1.0).mean()
    return psnr.item(), ssim.item()


def latent_rel_l2(samples: torch.Tensor, reference: torch.Tensor) -> float:
    return ((samples.float() - reference.float()).norm() / reference.float().norm()).item()
