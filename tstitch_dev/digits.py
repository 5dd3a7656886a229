"""A DiT pair trained here, on scikit-learn's handwritten digits: the quality half of T-Stitch's promise.

Real checkpoints cannot be downloaded on the project's machines, but a class-conditional DiT at DiT-S's
width learns 8x8 digits on a CPU in minutes. The recipe (one place: ``RECIPE``) is the paper's setting in
miniature: two DiTs of one width and different depths, class-conditional with a null class for
classifier-free guidance, DDPM's linear betas, learned-sigma output, saved in the original DiT key layout
so the pack's Load DiT Checkpoint node loads the files unchanged.

The digit (0..16 ink) is scaled to [-1, 1] and held in all 4 latent channels of an 8x8 "latent", which the
model's 1/8-size convention calls a 64x64 image. ComfyUI's KSampler returns the DiT's latents divided by SD's
latent scale 0.18215: ``samples_to_digits`` undoes that.

This module trains in plain torch (no ComfyUI import): ``DigitsDiT`` is the pack's network (nodes/_dit.py)
written for training, and tests/test_digits.py checks the two give the same output on the same weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .models import MODEL_CACHE, _building, _write

DIGITS_VERSION = 2  # 2: width 256 with 4 heads, safetensors that record the heads and the recipe
LATENT_SCALE = 0.18215  # SD1.5's, the DiT loader's latent format
NUM_TIMESTEPS = 1000


@dataclass(frozen=True)
class Recipe:
    """How one model of the pair is trained (HOST-NOTES: more, smaller steps mattered more than batch)."""

    depth: int
    # narrower than DiT-S's 384 so the shipped pair fits 16 MB in fp16; the heads are not in a DiT's weights, so
    # the shipped files record them (safetensors metadata) for the loader
    width: int = 256
    heads: int = 4  # DiT's head size, 64
    patch_size: int = 2
    classes: int = 10  # plus the null class row
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 50  # then cosine to 0
    weight_decay: float = 0.0
    ema_decay: float = 0.995
    class_dropout: float = 0.1  # the share of steps' labels replaced by the null class, for guidance
    seed: int = 0
    bf16: bool = False  # autocast; on this host's CPUs (no bf16 units) it is slower than fp32 (0.68 vs 0.46 s/step)

    def digest(self) -> str:
        """What the trained file records of its recipe: a hash of every setting and of ``DIGITS_VERSION``
        (raised when the training code changes what a recipe makes)."""
        return hashlib.sha1(json.dumps([DIGITS_VERSION, asdict(self)]).encode()).hexdigest()[:10]

    def file_name(self, name: str) -> str:
        return f"{name}-{self.digest()}.safetensors"


# the pair: the same width and recipe, 1 and 4 blocks (the paper's DiT-S -> DiT-XL is depth 12 -> 28 and wider).
# Depth 2 learned these digits to ~0.7 class accuracy, depth 4 (HOST-NOTES) to ~0.95: a large model worth showing.
SMALL = Recipe(depth=1, seed=1, steps=3000)
LARGE = Recipe(depth=4, seed=2, steps=4000)
# a second small model, never used to calibrate the Agreement Probe: the held-apart pair is it and LARGE
HELD_APART_SMALL = Recipe(depth=2, seed=3, steps=2000)
HELD_APART_SMALL_NAME = "digits-dit-held-apart-small"
SMALL_NAME, LARGE_NAME = "digits-dit-small", "digits-dit-large"


def load_digit_images():
    """scikit-learn's 1797 handwritten digits: images ``(1797, 8, 8)`` float32 in [-1, 1] and labels 0..9."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 8.0 - 1.0  # ink 0..16
    return images, digits.target.astype(np.int64)


def digits_to_latents(images):
    """Digit images ``(n, 8, 8)`` in [-1, 1] as the model's latents: the same digit in all 4 channels."""
    import torch

    images = torch.as_tensor(images, dtype=torch.float32)
    return images[:, None].expand(-1, 4, -1, -1).contiguous()


def samples_to_digits(samples):
    """KSampler's output for this model (``(n, 4, 8, 8)``, divided by the latent scale) as digit images
    ``(n, 8, 8)`` in [-1, 1]: the channels averaged, clipped to the ink range."""
    import torch

    latents = torch.as_tensor(samples).float() * LATENT_SCALE
    return latents.mean(dim=1).clamp(-1.0, 1.0)


def linear_betas():
    """DDPM's linear betas, 1e-4 to 0.02 over 1000 steps (float64, as the reference diffusion code)."""
    import torch

    return torch.linspace(1e-4, 0.02, NUM_TIMESTEPS, dtype=torch.float64)


def build_network(recipe: Recipe):
    """A freshly initialised ``DigitsDiT`` for ``recipe`` (DiT's own initialisation: adaLN-Zero)."""
    import torch

    torch.manual_seed(recipe.seed)
    return DigitsDiT(recipe.depth, recipe.width, recipe.heads, recipe.patch_size, recipe.classes + 1)


def _network_classes():
    from torch import nn

    from tstitch_core.dit import sincos_positions, timestep_frequencies

    def modulate(x, shift, scale):
        return x * (1 + scale[:, None]) + shift[:, None]

    class Attention(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)

        def forward(self, x):
            b, n, w = x.shape
            q, k, v = (t.view(b, n, self.heads, w // self.heads).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
            out = nn.functional.scaled_dot_product_attention(q, k, v)
            return self.proj(out.transpose(1, 2).reshape(b, n, w))

    class MLP(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc1 = nn.Linear(width, 4 * width)
            self.fc2 = nn.Linear(4 * width, width)

        def forward(self, x):
            return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))

    class Block(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.attn = Attention(width, heads)
            self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.mlp = MLP(width)
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

        def forward(self, x, c):
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, -1)
            x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
            return x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))

    class FinalLayer(nn.Module):
        def __init__(self, width, patch_size, out_channels):
            super().__init__()
            self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
            self.linear = nn.Linear(width, patch_size * patch_size * out_channels)
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

        def forward(self, x, c):
            shift, scale = self.adaLN_modulation(c).chunk(2, -1)
            return self.linear(modulate(self.norm_final(x), shift, scale))

    class PatchEmbed(nn.Module):
        def __init__(self, width, patch_size):
            super().__init__()
            self.proj = nn.Conv2d(4, width, patch_size, stride=patch_size)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class TimestepEmbedder(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(256, width), nn.SiLU(), nn.Linear(width, width))

        def forward(self, t):
            return self.mlp(timestep_frequencies(t))

    class LabelEmbedder(nn.Module):
        def __init__(self, rows, width):
            super().__init__()
            self.embedding_table = nn.Embedding(rows, width)  # saved (rows, width), as DiT's

        def forward(self, labels):
            return self.embedding_table(labels)

    class DigitsDiT(nn.Module):
        """DiT with learned sigma (8 output channels) on 8x8x4 latents, keys as in DiT's checkpoints."""

        def __init__(self, depth, width, heads, patch_size, class_rows, image_size=8):
            super().__init__()
            self.patch_size, self.grid = patch_size, image_size // patch_size
            self.x_embedder = PatchEmbed(width, patch_size)
            self.t_embedder = TimestepEmbedder(width)
            self.y_embedder = LabelEmbedder(class_rows, width)
            positions = sincos_positions(width, self.grid, self.grid).float()[None]
            self.pos_embed = nn.Parameter(positions, requires_grad=False)
            self.blocks = nn.ModuleList([Block(width, heads) for _ in range(depth)])
            self.final_layer = FinalLayer(width, patch_size, 8)
            self._initialize()

        def _initialize(self):
            # DiT's initialize_weights: xavier linears, N(0, 0.02) embeddings, adaLN-Zero
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    nn.init.zeros_(module.bias)
            weight = self.x_embedder.proj.weight
            nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
            nn.init.zeros_(self.x_embedder.proj.bias)
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
            nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
            for layer in [*(b.adaLN_modulation[-1] for b in self.blocks), self.final_layer.adaLN_modulation[-1],
                          self.final_layer.linear]:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

        def forward(self, x, t, labels):
            tokens = self.x_embedder(x) + self.pos_embed
            c = self.t_embedder(t) + self.y_embedder(labels)
            for block in self.blocks:
                tokens = block(tokens, c)
            tokens = self.final_layer(tokens, c)
            b, g, p = tokens.shape[0], self.grid, self.patch_size
            out = tokens.reshape(b, g, g, p, p, 8).permute(0, 5, 1, 3, 2, 4)
            return out.reshape(b, 8, g * p, g * p)

    return DigitsDiT


def DigitsDiT(*args, **kwargs):
    """The network (classes built on first use, so importing this module does not import torch)."""
    global _DigitsDiT
    if _DigitsDiT is None:
        _DigitsDiT = _network_classes()
    return _DigitsDiT(*args, **kwargs)


_DigitsDiT = None


def diffusion_loss(model, x0, labels, generator):
    """improved-diffusion's hybrid loss, as DiT trains: MSE on the predicted noise, plus the variational
    bound's KL for the learned variance (its mean frozen, so that term only trains the sigma half)."""
    import torch

    betas = linear_betas()
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    alphas_cumprod_prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    posterior_variance = betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
    posterior_log_variance = torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]]))

    n = x0.shape[0]
    t = torch.randint(0, NUM_TIMESTEPS, (n,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)

    def at(table):
        return table[t].float()[:, None, None, None]

    x_t = at(alphas_cumprod).sqrt() * x0 + (1 - at(alphas_cumprod)).sqrt() * noise
    out = model(x_t, t, labels).float()
    eps, var_values = out[:, :4], out[:, 4:]
    mse = ((eps - noise) ** 2).mean(dim=(1, 2, 3))

    # the model's mean from its (frozen) noise prediction, its variance interpolated in log space
    frozen_eps = eps.detach()
    x0_pred = (x_t - (1 - at(alphas_cumprod)).sqrt() * frozen_eps) / at(alphas_cumprod).sqrt()
    coef1 = betas * alphas_cumprod_prev.sqrt() / (1 - alphas_cumprod)
    coef2 = (1 - alphas_cumprod_prev) * (1 - betas).sqrt() / (1 - alphas_cumprod)
    true_mean = at(coef1) * x0 + at(coef2) * x_t
    model_mean = at(coef1) * x0_pred + at(coef2) * x_t
    fraction = (var_values + 1) / 2
    model_log_variance = fraction * at(torch.log(betas)) + (1 - fraction) * at(posterior_log_variance)
    true_log_variance = at(posterior_log_variance)
    kl = 0.5 * (-1.0 + model_log_variance - true_log_variance + torch.exp(true_log_variance - model_log_variance)
                + (true_mean - model_mean) ** 2 * torch.exp(-model_log_variance))
    vb = kl.mean(dim=(1, 2, 3)) / math.log(2.0)
    return (mse + vb).mean()


def train(recipe: Recipe, log=print):
    """Train one model by ``recipe``; its EMA weights as a state dict in DiT's checkpoint layout (fp32)."""
    import copy

    import torch

    threads = torch.get_num_threads()
    images, labels = load_digit_images()
    x_all = digits_to_latents(images)
    y_all = torch.as_tensor(labels)
    model = build_network(recipe)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.learning_rate,
                                  weight_decay=recipe.weight_decay)

    def learning_rate(step):
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    generator = torch.Generator().manual_seed(recipe.seed)
    started = time.perf_counter()
    for step in range(recipe.steps):
        index = torch.randint(0, len(x_all), (recipe.batch_size,), generator=generator)
        labels_step = y_all[index].clone()
        dropped = torch.rand(recipe.batch_size, generator=generator) < recipe.class_dropout
        labels_step[dropped] = recipe.classes  # the null class
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.bf16):
            loss = diffusion_loss(model, x_all[index], labels_step, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            for ema_param, param in zip(ema.parameters(), model.parameters()):
                if param.requires_grad:
                    ema_param.lerp_(param, 1 - recipe.ema_decay)
        if log and (step + 1) % max(1, recipe.steps // 10) == 0:
            log(f"  depth {recipe.depth}: step {step + 1}/{recipe.steps}, loss {loss.item():.4f}, "
                f"{time.perf_counter() - started:.0f} s ({threads} thread{'s' if threads > 1 else ''})")
    return {k: v.detach().clone().contiguous() for k, v in ema.state_dict().items()}


def save_checkpoint(state_dict: dict, path: Path, recipe: Recipe | None = None) -> Path:
    """The state dict as safetensors in DiT's key layout, weights fp16, the fixed pos_embed fp32; the metadata
    records the attention heads (the loader reads ``dit_heads``: no published DiT has this width) and, given
    one, the recipe and its digest."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.float() if k == "pos_embed" else v.half() for k, v in state_dict.items()}
    width = tensors["x_embedder.proj.weight"].shape[0]
    heads = recipe.heads if recipe else next(r.heads for r in (SMALL, LARGE) if r.width == width)
    metadata = {"dit_heads": str(heads)}
    if recipe is not None:
        metadata.update(tstitch_recipe=json.dumps(asdict(recipe)), tstitch_recipe_digest=recipe.digest(),
                        tstitch_digits_version=str(DIGITS_VERSION))
    return _write(path, lambda partial: save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial),
                                                  metadata=metadata))


def read_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata() or {}


def ensure_trained(recipe: Recipe, name: str, folder: Path | None = None, log=print) -> Path:
    """Path of the model ``recipe`` trains, trained once and cached (concurrent callers train it once)."""
    path = (MODEL_CACHE if folder is None else folder) / recipe.file_name(name)
    if path.exists():
        return path
    with _building(path):
        if not path.exists():
            if log:
                log(f"T-Stitch digits: training {name} (depth {recipe.depth}, {recipe.steps} steps); "
                    f"cached as {path}")
            started = time.perf_counter()
            save_checkpoint(train(recipe, log=log), path, recipe)
            if log:
                log(f"T-Stitch digits: {name} trained in {time.perf_counter() - started:.0f} s")
    return path


def ensure_pair(folder: Path | None = None, log=print, small: Recipe | None = None, large: Recipe | None = None):
    """The (small, large) pair ``small`` and ``large`` train (by default ``SMALL`` and ``LARGE``), trained on first
    use into ``folder`` (default ``MODEL_CACHE``). The demo and the curves use the shipped pair: ``shipped_pair``."""
    folder = MODEL_CACHE if folder is None else folder
    return (ensure_trained(small or SMALL, SMALL_NAME, folder, log),
            ensure_trained(large or LARGE, LARGE_NAME, folder, log))


# --- the shipped pair: ``SMALL`` and ``LARGE`` trained once and committed (the one model file the repository
# holds), so the demo's first picture needs no training; ``./tstitch train-digits`` makes them again ---

SHIPPED_DIR = Path(__file__).resolve().parent / "digits_pair"
SHIPPED = {SMALL_NAME: SMALL, LARGE_NAME: LARGE}
# what each must score through the pack at Sampling's settings, (least class accuracy, most Frechet distance):
# CPU training is not bitwise reproducible across machines, so a retrained pair is held to these, not to the
# shipped files' bits. The depth-1 model draws digits (noise scores 120-155) but barely follows its class
# (0.15 measured): no accuracy asked of it; that weakness is what stitching past the knee shows.
THRESHOLDS = {SMALL_NAME: (0.0, 25.0), LARGE_NAME: (0.9, 5.0)}
SHIPPED_LIMIT_BYTES = 16_000_000  # together: every clone and every call to a GPU machine carries them


def shipped_path(name: str, folder: Path | None = None) -> Path:
    return (SHIPPED_DIR if folder is None else folder) / f"{name}.safetensors"


def shipped_pair() -> tuple[Path, Path]:
    """The shipped (small, large) files; a clear error where they are missing or no longer their recipes'."""
    paths = shipped_path(SMALL_NAME), shipped_path(LARGE_NAME)
    for path, (name, recipe) in zip(paths, SHIPPED.items()):
        if not path.is_file():
            raise FileNotFoundError(f"T-Stitch digits: {path} is missing (it is committed; git lfs or a partial "
                                    "checkout may have left it out). ./tstitch train-digits makes it again.")
        digest = read_metadata(path).get("tstitch_recipe_digest")
        if digest != recipe.digest():
            raise ValueError(f"T-Stitch digits: {path.name} was trained by recipe {digest}, and tstitch_dev/digits.py "
                             f"now says {recipe.digest()}: run ./tstitch train-digits to train the pair it describes.")
    return paths


def short_recipes(steps: int = 4):
    """The pair's recipes on a budget of a few steps: the pipeline, not the quality (tests)."""
    return replace(SMALL, steps=steps, warmup_steps=2), replace(LARGE, steps=steps, warmup_steps=2)


# --- the quality measure: a classifier trained on the real digits, its accuracy and features on samples ---

CLASSIFIER_HIDDEN = 64
CLASSIFIER_SEED = 0
HELD_OUT = 0.25  # the share of real digits the classifier never sees, for its own accuracy


@dataclass
class DigitsClassifier:
    """An MLP (one hidden layer) trained on 75% of the real digits. Its hidden ReLU activations are the
    features the Frechet distance compares, as FID compares an Inception network's."""

    weights: list  # numpy (64, hidden), (hidden, 10)
    biases: list
    held_out_accuracy: float
    real_mean: object  # of all real digits' features
    real_covariance: object

    def features(self, images):
        """``(n, 8, 8)`` digits in [-1, 1] (numpy or torch) -> ``(n, hidden)`` float64."""
        import numpy as np

        x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        return np.maximum(x @ self.weights[0] + self.biases[0], 0.0)

    def predict(self, images):
        import numpy as np

        return np.argmax(self.features(images) @ self.weights[1] + self.biases[1], axis=1)

    def accuracy(self, images, labels) -> float:
        import numpy as np

        return float(np.mean(self.predict(images) == np.asarray(labels)))

    def frechet_distance(self, images) -> float:
        """Between the features of ``images`` and of all real digits (this data set's FID)."""
        mean, covariance = feature_statistics(self.features(images))
        return frechet_distance(mean, covariance, self.real_mean, self.real_covariance)


def train_classifier(seed: int = CLASSIFIER_SEED) -> DigitsClassifier:
    """The quality measure's classifier (seeded: the same network every time on one machine)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    images, labels = load_digit_images()
    x = images.reshape(len(images), -1)
    x_train, x_test, y_train, y_test = train_test_split(x, labels, test_size=HELD_OUT, random_state=seed,
                                                        stratify=labels)
    mlp = MLPClassifier(hidden_layer_sizes=(CLASSIFIER_HIDDEN,), alpha=1e-3, max_iter=400, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x_train, y_train)
    classifier = DigitsClassifier([w.astype("float64") for w in mlp.coefs_],
                                  [b.astype("float64") for b in mlp.intercepts_], 0.0, None, None)
    classifier.held_out_accuracy = classifier.accuracy(x_test.reshape(-1, 8, 8), y_test)
    classifier.real_mean, classifier.real_covariance = feature_statistics(classifier.features(images))
    return classifier


def feature_statistics(features):
    """Mean and (unbiased) covariance of ``(n, d)`` features, as FID takes them."""
    import numpy as np

    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b) -> float:
    """The Frechet (2-Wasserstein) distance between two Gaussians, squared, as FID reports it:
    |m_a - m_b|^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2).

    The trace of the cross term is the sum of the square roots of the eigenvalues of C_a^1/2 C_b C_a^1/2,
    a symmetric PSD matrix: computed with symmetric eigendecompositions (real, no sqrtm of a non-symmetric
    product), tiny negative eigenvalues from rounding clipped to 0."""
    import numpy as np

    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    covariance_a, covariance_b = np.atleast_2d(covariance_a), np.atleast_2d(covariance_b)
    values, vectors = np.linalg.eigh(covariance_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root_a @ covariance_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(covariance_a) + np.trace(covariance_b) - 2 * cross)


# --- sampling through ComfyUI: the pack's DiT loader, its Class Index node, its pair, KSampler ---
# (``nodes`` is importable once a ComfyUI host is booted: comfy_env.boot_comfyui)


@dataclass(frozen=True)
class Sampling:
    """The curve's sampler settings: the DiT examples' (Euler on ComfyUI's normal schedule, cfg 1.5, the DiT
    paper's FID setting) at 20 steps, a size where 8x8 digits need no more."""

    steps: int = 20
    sampler: str = "euler"
    scheduler: str = "normal"
    cfg: float = 1.5
    per_class: int = 20  # samples of each digit per seed (200 a setting)
    switch_by: str = "timestep"  # T-Stitch's rule: the small model while t/T is above 1 - fraction


def load_trained(path: Path, cfg_channels: str = "all 4"):
    """A trained digits DiT through the pack's Load DiT Checkpoint node, from its own folder.
    Guidance on all 4 channels: the digit is in all of them (DiT's 3-channel guidance is ImageNet's habit)."""
    import folder_paths
    import nodes

    folder = str(Path(path).parent)
    if folder not in folder_paths.get_folder_paths("diffusion_models"):
        folder_paths.add_model_folder_path("diffusion_models", folder)
    loader = nodes.NODE_CLASS_MAPPINGS["TStitchDiTLoader"]
    return loader.execute(dit_name=Path(path).name, weight_dtype="fp32", cfg_channels=cfg_channels).result[0]


def class_conditionings(model, classes: int = 10) -> list:
    """(positive, negative) for every digit, from the Class Index node given ``model``."""
    import nodes

    node = nodes.NODE_CLASS_MAPPINGS["TStitchClassIndex"]
    return [tuple(node.execute(model=model, class_index=c).result) for c in range(classes)]


def stitched_model(small, large, fraction: float | None, switch_by: str = "timestep"):
    """The model a setting samples with: ``fraction`` 0 the large model alone, 1 the small one alone, between
    them T-Stitch Model Pair (what the curve's ends are compared with: the pair at 0 and 1)."""
    import nodes

    if fraction == 0.0:
        return large
    if fraction == 1.0:
        return small
    pair = nodes.NODE_CLASS_MAPPINGS["TStitchModelPair"]
    return pair.execute(small_model=small, large_model=large, small_fraction=fraction, switch_by=switch_by).result[0]


@contextlib.contextmanager
def progress_bars_off():
    """ComfyUI's progress bars off for a block (ten samplings a setting), the host's setting put back after."""
    import comfy.utils

    enabled = comfy.utils.PROGRESS_BAR_ENABLED
    comfy.utils.set_progress_bar_enabled(False)
    try:
        yield
    finally:
        comfy.utils.set_progress_bar_enabled(enabled)


def sample_digits(model, conditionings: list, sampling: Sampling, seed: int):
    """``sampling.per_class`` samples of every digit with KSampler: (digit images (n, 8, 8) in [-1, 1], their
    conditioning classes, seconds). Digit c's batch uses the noise seed ``seed * 1000 + c``."""
    import nodes
    import torch

    latent = nodes.EmptyLatentImage().generate(64, 64, sampling.per_class)[0]  # 8x8 latents
    images, labels = [], []
    started = time.perf_counter()
    with torch.inference_mode(), progress_bars_off():
        for digit, (positive, negative) in enumerate(conditionings):
            samples = nodes.KSampler().sample(model, seed * 1000 + digit, sampling.steps, sampling.cfg,
                                              sampling.sampler, sampling.scheduler, positive, negative, latent)[0]
            images.append(samples_to_digits(samples["samples"]))
            labels += [digit] * sampling.per_class
    seconds = time.perf_counter() - started
    return torch.cat(images).numpy(), labels, seconds


def score(path: Path, classifier: DigitsClassifier, sampling: Sampling | None = None, seed: int = 0,
          classes: int = 10) -> tuple[float, float]:
    """(class accuracy, Frechet distance) of a trained file's samples through the pack: its loader, Class Index,
    KSampler. ``classes`` fewer than 10 for a quick check (the Frechet distance then compares with all digits)."""
    model = load_trained(path)
    images, labels, _ = sample_digits(model, class_conditionings(model, classes), sampling or Sampling(), seed)
    return classifier.accuracy(images, labels), classifier.frechet_distance(images)


def train_shipped(argv=None) -> int:
    """``./tstitch train-digits``: the shipped pair trained again from its recipes, then held to its thresholds."""
    import argparse
    import sys
    import tempfile

    import torch

    parser = argparse.ArgumentParser(prog="./tstitch train-digits", description=(
        "Train the shipped digits DiT pair again from tstitch_dev/digits.py's recipes (about 10 minutes on 2 quiet "
        "cores), write it (fp16 safetensors recording its recipe) and score it through the pack."))
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help=f"where the pair goes (default {SHIPPED_DIR})")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    paths = {}
    for name, recipe in SHIPPED.items():
        print(f"T-Stitch digits: training {name} (depth {recipe.depth}, width {recipe.width}, {recipe.steps} steps)",
              flush=True)
        paths[name] = save_checkpoint(train(recipe, log=lambda line: print(line, flush=True)),
                                      shipped_path(name, args.out), recipe)
    from .comfy_env import boot_comfyui

    boot_comfyui(Path(tempfile.mkdtemp(prefix="tstitch-digits-")), cpu=True)
    classifier = train_classifier()
    failed = False
    for name, path in paths.items():
        with torch.inference_mode():
            accuracy, frechet = score(path, classifier)
        least, most = THRESHOLDS[name]
        ok = accuracy >= least and frechet <= most
        failed |= not ok
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB): class accuracy {accuracy:.3f} (at least {least:g}), "
              f"Frechet {frechet:.2f} (at most {most:g}): {'passes' if ok else 'FAILS'}")
    total = sum(path.stat().st_size for path in paths.values())
    if total > SHIPPED_LIMIT_BYTES:
        print(f"the pair is {total / 1e6:.1f} MB, over the {SHIPPED_LIMIT_BYTES / 1e6:g} MB it may take")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    sys.exit(train_shipped())
