"""How close a result is to the large model alone: PSNR and SSIM on the decoded images (kornia's, which
ComfyUI ships), over images and frames. The latents' distance is tstitch_core's compute_latent_rel_l2."""

from __future__ import annotations

import kornia.metrics
import torch

from ..tstitch_core.report import summarize_psnr


def image_metrics(images: torch.Tensor, reference: torch.Tensor) -> tuple[float, int, float]:
    """(PSNR dB, identical images, SSIM) of IMAGE batches [N, H, W, 3] in 0..1 (N images or frames): PSNR the
    mean over the images that differ (identical ones, PSNR inf, are counted instead), SSIM the mean over all."""
    x, y = (t.movedim(-1, 1).float().clamp(0, 1) for t in (images, reference))
    psnr, identical = summarize_psnr([kornia.metrics.psnr(a[None], b[None], max_val=1.0).item()
                                      for a, b in zip(x, y)])
    ssim = kornia.metrics.ssim(x, y, window_size=11, max_val=1.0).mean()
    return psnr, identical, ssim.item()
