"""DiT checkpoints in the original layout, loaded by the pack's loader, against diffusers' own DiT.

The reference is diffusers' ``DiTTransformer2DModel`` forward pass on the same weights (renamed into its
layout here). The pack's network was written from the paper; diffusers' from the original code.
"""

from __future__ import annotations

import pytest
import torch

from tstitch_dev.models import TINY_DIT_S, TINY_DIT_S4, TINY_DIT_XL, build_dit_state_dict, ensure_dit




def to_diffusers(state_dict: dict, depth: int) -> dict:
    """The original DiT keys in diffusers' layout: shared embedders copied into every block, qkv split."""
    renamed = {"pos_embed.proj.weight": state_dict["x_embedder.proj.weight"],
               "pos_embed.proj.bias": state_dict["x_embedder.proj.bias"],
               "proj_out_1.weight": state_dict["final_layer.adaLN_modulation.1.weight"],
               "proj_out_1.bias": state_dict["final_layer.adaLN_modulation.1.bias"],
               "proj_out_2.weight": state_dict["final_layer.linear.weight"],
               "proj_out_2.bias": state_dict["final_layer.linear.bias"]}
    for i in range(depth):
        ours, theirs = f"blocks.{i}.", f"transformer_blocks.{i}."
        emb = theirs + "norm1.emb."
        for kind in ("weight", "bias"):
            renamed[f"{emb}timestep_embedder.linear_1.{kind}"] = state_dict[f"t_embedder.mlp.0.{kind}"]
            renamed[f"{emb}timestep_embedder.linear_2.{kind}"] = state_dict[f"t_embedder.mlp.2.{kind}"]
            renamed[f"{theirs}norm1.linear.{kind}"] = state_dict[f"{ours}adaLN_modulation.1.{kind}"]
            q, k, v = state_dict[f"{ours}attn.qkv.{kind}"].chunk(3)
            renamed[f"{theirs}attn1.to_q.{kind}"], renamed[f"{theirs}attn1.to_k.{kind}"] = q, k
            renamed[f"{theirs}attn1.to_v.{kind}"] = v
            renamed[f"{theirs}attn1.to_out.0.{kind}"] = state_dict[f"{ours}attn.proj.{kind}"]
            renamed[f"{theirs}ff.net.0.proj.{kind}"] = state_dict[f"{ours}mlp.fc1.{kind}"]
            renamed[f"{theirs}ff.net.2.{kind}"] = state_dict[f"{ours}mlp.fc2.{kind}"]
        renamed[f"{emb}class_embedder.embedding_table.weight"] = state_dict["y_embedder.embedding_table.weight"]
    return renamed


def diffusers_dit(spec):
    """diffusers' DiT holding ``spec``'s weights as stored in its file (fp16, computed in fp32); it computes its
    own position table, so the checkpoint's pos_embed is checked too."""
    from diffusers import DiTTransformer2DModel

    weights = {k: v if k == "pos_embed" else v.half().float() for k, v in build_dit_state_dict(spec).items()}
    model = DiTTransformer2DModel(num_attention_heads={384: 6, 1152: 16}[spec.width],
                                  attention_head_dim={384: 64, 1152: 72}[spec.width], in_channels=4,
                                  out_channels=8, num_layers=spec.depth, sample_size=spec.grid_size * spec.patch_size,
                                  patch_size=spec.patch_size, norm_eps=1e-6)
    model.load_state_dict(to_diffusers(weights, spec.depth), strict=True)
    for block in model.transformer_blocks:
        # diffusers divides DiT's timestep frequencies by half - 1, the original code (and so the
        # published weights) by half; set diffusers' own option to the original's
        block.norm1.emb.time_proj.downscale_freq_shift = 0
    return model.eval()


@pytest.fixture(scope="session")
def load_dit(comfy_host, run_node):
    import folder_paths
    from tstitch_dev.models import MODEL_CACHE

    folder_paths.add_model_folder_path("diffusion_models", str(MODEL_CACHE))

    def load(spec, suffix=".pt", weight_dtype="fp32", cfg_channels="first 3 (DiT)"):
        return run_node("TStitchDiTLoader", dit_name=ensure_dit(spec, suffix=suffix).name, weight_dtype=weight_dtype,
                        cfg_channels=cfg_channels)[0]

    return load


def class_conds(run_node, name="207 golden retriever"):
    return run_node("TStitchImageNetClass", class_name=name)


def denoise_with_pack(model, x, sigma, conditioning):
    context = conditioning[0][0].expand(x.shape[0], -1, -1)
    with torch.inference_mode():
        return model.model.apply_model(x, sigma, c_crossattn=context)


def denoise_with_diffusers(reference, model_sampling, x, sigma, labels):
    """ComfyUI's eps parametrisation around diffusers' noise prediction (its first 4 of 8 channels)."""
    t = model_sampling.timestep(sigma).float()
    x_in = x / (sigma[:, None, None, None] ** 2 + 1) ** 0.5
    with torch.no_grad():
        eps = reference(x_in, timestep=t, class_labels=labels).sample[:, :4]
    return x - sigma[:, None, None, None] * eps


@pytest.mark.parametrize("spec", [TINY_DIT_S, TINY_DIT_XL, TINY_DIT_S4], ids=["S/2", "XL/2", "S/4"])
def test_noise_prediction_matches_diffusers(load_dit, run_node, spec):
    model = load_dit(spec)
    reference = diffusers_dit(spec)
    model_sampling = model.get_model_object("model_sampling")
    size = spec.grid_size * spec.patch_size
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, size, size, generator=generator) * 5
    for sigma_value, name, index in ((14.6, "207 golden retriever", 207), (1.0, "360 otter", 360),
                                     (0.05, "0 tench", 0)):
        sigma = torch.full((2,), sigma_value)
        ours = denoise_with_pack(model, x, sigma, class_conds(run_node, name)[0])
        theirs = denoise_with_diffusers(reference, model_sampling, x, sigma, torch.tensor([index, index]))
        scale = theirs.abs().max()
        assert (ours - theirs).abs().max() <= 2e-5 * scale, f"sigma {sigma_value}: {(ours - theirs).abs().max()}"
    # the null class is diffusers' row 1000 too
    null = denoise_with_pack(model, x, sigma, class_conds(run_node)[1])
    expected = denoise_with_diffusers(reference, model_sampling, x, sigma, torch.tensor([1000, 1000]))
    assert (null - expected).abs().max() <= 2e-5 * expected.abs().max()


def test_loader_reads_the_variant_from_the_weights(comfy_host):
    from tstitch_core.dit import read_dit_shape
    from tstitch_dev.models import DIT_B_2, DIT_S_2, DIT_XL_2, dit_tensor_shapes

    names = [read_dit_shape(dit_tensor_shapes(spec)).name for spec in (DIT_S_2, DIT_B_2, DIT_XL_2, TINY_DIT_S4)]
    assert names == ["DiT-S/2 at 256x256", "DiT-B/2 at 256x256", "DiT-XL/2 at 256x256",
                     "DiT (width 384, depth 2)/4 at 128x128"]
    xl = read_dit_shape(dit_tensor_shapes(DIT_XL_2))
    assert (xl.depth, xl.width, xl.heads, xl.patch_size, xl.learned_sigma) == (28, 1152, 16, 2, True)


def test_pt_and_safetensors_load_the_same_model(load_dit, run_node):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor([2.0])
    positive = class_conds(run_node)[0]
    from_pt = denoise_with_pack(load_dit(TINY_DIT_S, ".pt"), x, sigma, positive)
    from_safetensors = denoise_with_pack(load_dit(TINY_DIT_S, ".safetensors"), x, sigma, positive)
    assert torch.equal(from_pt, from_safetensors)


def test_comfyuis_plain_patcher_reload_gives_the_same_model(load_dit, run_node):
    """ComfyUI 0.33 reloads a model through its cached_patcher_init with disable_dynamic=True where it needs a plain
    ModelPatcher (clone(disable_dynamic=True) of a dynamic patcher on a GPU): called as ComfyUI calls it."""
    import comfy.model_patcher

    model = load_dit(TINY_DIT_S)
    loader, arguments = model.cached_patcher_init[:2]
    reloaded = loader(*arguments, disable_dynamic=True)
    assert type(reloaded) is comfy.model_patcher.ModelPatcher
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    positive = class_conds(run_node)[0]
    assert torch.equal(denoise_with_pack(reloaded, x, torch.tensor([2.0]), positive),
                       denoise_with_pack(model, x, torch.tensor([2.0]), positive))


def test_dit_uses_the_linear_beta_schedule_and_sd_latents(load_dit):
    model = load_dit(TINY_DIT_S)
    model_sampling = model.get_model_object("model_sampling")
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    expected_sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    torch.testing.assert_close(model_sampling.sigmas.double(), expected_sigmas, rtol=1e-5, atol=0)
    latent_format = model.get_model_object("latent_format")
    assert (type(latent_format).__name__, latent_format.scale_factor) == ("SD15", 0.18215)


# --- T-Stitch on DiT: the paper's own setting, in miniature ---------------------------------------------------

DIT_STEPS, DIT_CFG = 8, 4.0


@pytest.fixture(scope="module")
def dits(load_dit):
    from tstitch_dev.models import TINY_DIT_B

    return {"S": load_dit(TINY_DIT_S, weight_dtype="default"), "B": load_dit(TINY_DIT_B, weight_dtype="default"),
            "XL": load_dit(TINY_DIT_XL, weight_dtype="default")}


@pytest.fixture(scope="module")
def dit_latent(comfy_nodes):
    return comfy_nodes.EmptyLatentImage().generate(128, 128, 1)[0]  # DiT's 16x16 latent grid in miniature


@pytest.fixture(scope="module")
def sample_dit(run_node, dit_latent):
    def sample(model, how="ksampler", sampler_name="euler", guider=None):
        positive, negative = class_conds(run_node)
        if how == "ksampler":
            return run_node("KSampler", model=model, seed=0, steps=DIT_STEPS, cfg=DIT_CFG, sampler_name=sampler_name,
                            scheduler="normal", positive=positive, negative=negative, latent_image=dit_latent,
                            denoise=1.0)[0]["samples"]
        if guider is None:
            guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=DIT_CFG)[0]
        return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                        sampler=run_node("KSamplerSelect", sampler_name=sampler_name)[0],
                        sigmas=run_node("BasicScheduler", model=model, scheduler="normal", steps=DIT_STEPS,
                                        denoise=1.0)[0], latent_image=dit_latent)[0]["samples"]

    return sample


def dit_cfg_denoiser(model, positive, negative, cfg, channels=3):
    """D(x, sigma) from BaseModel.apply_model with DiT's guidance written out: the first ``channels`` channels
    guided, the rest the class's prediction (cond and uncond in separate passes; none of the pack's CFG code)."""
    base_model = model.model

    def denoise(x, sigma):
        s = sigma.expand(x.shape[0])
        cond = base_model.apply_model(x, s, c_crossattn=positive.expand(x.shape[0], -1, -1))
        uncond = base_model.apply_model(x, s, c_crossattn=negative.expand(x.shape[0], -1, -1))
        guided = cond.clone()
        guided[:, :channels] = uncond[:, :channels] + (cond[:, :channels] - uncond[:, :channels]) * cfg
        return guided

    return denoise


def hand_loop(models, fractions, run_node, dit_latent):
    """Euler over each model's own denoiser with DiT's 3-channel guidance, each step's model picked by the DiT
    rule as the pack reads it (t / T >= 1 - fraction) on the step's own sigma: none of the pack's routing runs."""
    import comfy.model_management
    import comfy.sample
    import comfy.samplers
    from tstitch_dev.testing import euler

    comfy.model_management.load_models_gpu(models)
    positive, negative = (c[0][0] for c in class_conds(run_node))
    denoisers = [dit_cfg_denoiser(m, positive, negative, DIT_CFG) for m in models]
    model_sampling = models[-1].get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(model_sampling, "normal", DIT_STEPS)
    t_max = float(model_sampling.timestep(model_sampling.sigma_max))
    per_step = []
    for sigma in sigmas[:-1]:
        t_over_T = float(model_sampling.timestep(sigma)) / t_max
        per_step.append(next((d for d, f in zip(denoisers, fractions) if t_over_T >= 1 - f), denoisers[-1]))
    noise = comfy.sample.prepare_noise(dit_latent["samples"], 0)
    with torch.no_grad():
        x = euler(per_step, noise * torch.sqrt(1.0 + sigmas[0] ** 2), sigmas)
    return models[-1].model.process_latent_out(x), per_step, denoisers


def assert_close_to(actual, expected, rtol=1e-4):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * expected.abs().max().item())


@pytest.mark.parametrize("how", ["ksampler", "sampler_custom_advanced", "tstitch_guider"])
def test_dit_s_to_xl_at_40_percent_by_timestep_matches_a_hand_loop(how, dits, stitch, run_node, sample_dit,
                                                                  dit_latent):
    expected, per_step, denoisers = hand_loop([dits["S"], dits["XL"]], [0.4], run_node, dit_latent)
    assert 0 < per_step.count(denoisers[0]) < DIT_STEPS  # both models run
    if how == "tstitch_guider":
        positive, negative = class_conds(run_node)
        guider = run_node("TStitchGuider", small_model=dits["S"], large_model=dits["XL"], small_fraction=0.4,
                          switch_by="timestep", small_positive=positive, small_negative=negative, small_cfg=DIT_CFG,
                          large_positive=positive, large_negative=negative, large_cfg=DIT_CFG)[0]
        actual = sample_dit(dits["XL"], "custom", guider=guider)
    else:
        actual = sample_dit(stitch(dits["S"], dits["XL"], 0.4, "timestep"), how)
    assert_close_to(actual, expected)


def test_the_hand_loop_tells_another_split_apart(dits, stitch, run_node, sample_dit, dit_latent):
    other, _, _ = hand_loop([dits["S"], dits["XL"]], [0.6], run_node, dit_latent)
    with pytest.raises(AssertionError):
        assert_close_to(sample_dit(stitch(dits["S"], dits["XL"], 0.4, "timestep")), other)


@pytest.mark.parametrize("fraction, alone", [(0.0, "XL"), (1.0, "S")])
@pytest.mark.parametrize("switch_by", ["steps", "timestep"])
def test_fraction_zero_and_one_are_each_dit_alone_bit_for_bit(fraction, alone, switch_by, dits, stitch, sample_dit):
    assert torch.equal(sample_dit(stitch(dits["S"], dits["XL"], fraction, switch_by), sampler_name="dpmpp_2m"),
                       sample_dit(dits[alone], sampler_name="dpmpp_2m"))


def test_s_b_xl_at_40_40_20_routes_each_call_by_t_over_T(dits, stitch, sample_dit, tag, calls):
    small_side = stitch(tag(dits["S"], "S"), tag(dits["B"], "B"), 0.4, "timestep")
    sample_dit(stitch(small_side, tag(dits["XL"], "X"), 0.8, "timestep"))
    model_sampling = dits["XL"].get_model_object("model_sampling")
    for name, sigma in calls:
        t_over_T = float(model_sampling.timestep(torch.tensor([sigma]))) / 999
        assert name == ("S" if t_over_T >= 0.6 else "B" if t_over_T >= 0.2 else "X"), (name, t_over_T)
    assert set(calls.names()) == {"S", "B", "X"}


def test_s_b_xl_matches_a_hand_loop(dits, stitch, run_node, sample_dit, dit_latent):
    expected, per_step, denoisers = hand_loop([dits["S"], dits["B"], dits["XL"]], [0.4, 0.8], run_node, dit_latent)
    assert all(d in per_step for d in denoisers)
    nested = stitch(stitch(dits["S"], dits["B"], 0.4, "timestep"), dits["XL"], 0.8, "timestep")
    assert_close_to(sample_dit(nested), expected)


# --- DiT's own sampler: DDIM over its respaced timesteps, guidance on three of four channels -------------------

OFFICIAL_STEPS = 100
# the timesteps DiT's and T-Stitch's samplers take for 100 steps of 1000 (improved-diffusion's respacing,
# space_timesteps(1000, "100"): i * 999 / 99, rounded)
OFFICIAL_TIMESTEPS = [round(i * 999 / 99) for i in range(OFFICIAL_STEPS - 1, -1, -1)]
# the pack against the official DDIM update, both in fp32: max |difference| / max |x_0| measured 1.2e-6 (3
# channels) and 1.5e-6 (all 4) on the CPU; guiding all 4 against the official sampler differs by 0.11
OFFICIAL_RTOL = 1e-5


def official_ddim(models, fraction, noise, positive, negative, cfg, guided_channels=3):
    """DDIM (eta 0, Song et al. 2021, eq. 12) as DiT's and T-Stitch's samplers run it, in their own variables:
    x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps from x_T = ``noise``, over OFFICIAL_TIMESTEPS, the last
    step to alphabar = 1; eps guided on its first ``guided_channels`` channels (the rest the class's); models[0]
    for t / 1000 >= 1 - fraction, T-Stitch's rule, else models[1]. The coefficients are computed in float64 from
    the linear betas and applied in float32, as there. Only the networks come from the pack."""
    import comfy.model_management

    comfy.model_management.load_models_gpu(models)
    alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)
    x, ran = noise.clone(), []
    for i, t in enumerate(OFFICIAL_TIMESTEPS):
        model = models[0] if t / 1000 >= 1 - fraction else models[1]
        ran.append(model)
        network = model.model.diffusion_model
        timesteps = torch.full((x.shape[0],), float(t))
        with torch.no_grad():
            cond, uncond = (network(x, timesteps, context=c.expand(x.shape[0], -1, -1)) for c in (positive, negative))
        eps = cond.clone()
        k = guided_channels
        eps[:, :k] = uncond[:, :k] + cfg * (cond[:, :k] - uncond[:, :k])
        alphabar = alphas_cumprod[t]
        last = i + 1 == len(OFFICIAL_TIMESTEPS)
        alphabar_prev = torch.tensor(1.0, dtype=torch.float64) if last else alphas_cumprod[OFFICIAL_TIMESTEPS[i + 1]]
        recip, recipm1 = (1 / alphabar).sqrt().float(), (1 / alphabar - 1).sqrt().float()
        x0 = recip * x - recipm1 * eps
        eps = (recip * x - x0) / recipm1
        x = x0 * alphabar_prev.sqrt().float() + (1 - alphabar_prev).sqrt().float() * eps
    return x, ran


def sample_like_the_official_sampler(run_node, model, dit_latent, cfg=DIT_CFG):
    """SamplerCustom with the ddim sampler and DiT Scheduler's 100 steps: x_0 in DiT's latent scale (ComfyUI
    returns latents divided by SD's 0.18215)."""
    positive, negative = class_conds(run_node)
    samples = run_node("SamplerCustom", model=model, add_noise=True, noise_seed=0, cfg=cfg, positive=positive,
                       negative=negative, sampler=run_node("KSamplerSelect", sampler_name="ddim")[0],
                       sigmas=run_node("TStitchDiTScheduler", model=model, steps=OFFICIAL_STEPS)[0],
                       latent_image=dit_latent)[0]["samples"]
    return model.model.process_latent_in(samples)


def official_noise(dit_latent):
    import comfy.sample

    return comfy.sample.prepare_noise(dit_latent["samples"], 0)  # ComfyUI's noise for seed 0: x_T of both


def assert_equal_in_fp32(actual, expected):
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=0, atol=OFFICIAL_RTOL * scale)


def test_dit_scheduler_gives_the_official_timesteps(dits, run_node):
    model_sampling = dits["XL"].get_model_object("model_sampling")
    sigmas = run_node("TStitchDiTScheduler", model=dits["XL"], steps=OFFICIAL_STEPS)[0]
    assert len(sigmas) == OFFICIAL_STEPS + 1 and sigmas[-1] == 0
    assert model_sampling.timestep(sigmas[:-1]).tolist() == OFFICIAL_TIMESTEPS
    assert OFFICIAL_TIMESTEPS[:3] == [999, 989, 979] and OFFICIAL_TIMESTEPS[-3:] == [20, 10, 0]
    assert float(sigmas[0]) == float(model_sampling.sigma_max)  # so ComfyUI scales the noise to x_T exactly


def test_the_pair_splits_the_official_timesteps_as_t_stitch_does_at_40_percent(dits, stitch, run_node, dit_latent,
                                                                             tag, calls):
    # the pack reads t / 999 >= 0.6, T-Stitch t / 1000 >= 0.6: no integer t lies between 599.4 and 600
    pair = stitch(tag(dits["S"], "S"), tag(dits["XL"], "X"), 0.4, "timestep")
    sample_like_the_official_sampler(run_node, pair, dit_latent)
    model_sampling = dits["XL"].get_model_object("model_sampling")
    ran = [(name, int(model_sampling.timestep(torch.tensor([sigma])))) for name, sigma in calls]
    assert [t for _, t in ran] == OFFICIAL_TIMESTEPS  # one call per step: cond and uncond batched
    assert [name for name, _ in ran] == ["S" if t / 1000 >= 0.6 else "X" for t in OFFICIAL_TIMESTEPS]
    assert calls.names() == "S" * 40 + "X" * 60 and ran[39][1] == 605 and ran[40][1] == 595


def test_dit_s_to_xl_at_40_percent_is_the_official_t_stitch_ddim_sampler(dits, stitch, run_node, dit_latent):
    positive, negative = (c[0][0] for c in class_conds(run_node))
    expected, ran = official_ddim([dits["S"], dits["XL"]], 0.4, official_noise(dit_latent), positive, negative,
                                  DIT_CFG)
    assert ran.count(dits["S"]) == 40
    actual = sample_like_the_official_sampler(run_node, stitch(dits["S"], dits["XL"], 0.4, "timestep"), dit_latent)
    assert_equal_in_fp32(actual, expected)


def test_guiding_all_four_channels_is_switchable_and_is_not_the_official_sampler(load_dit, stitch, run_node,
                                                                                dit_latent):
    from tstitch_dev.models import TINY_DIT_S, TINY_DIT_XL

    small, large = (load_dit(spec, weight_dtype="default", cfg_channels="all 4") for spec in (TINY_DIT_S, TINY_DIT_XL))
    actual = sample_like_the_official_sampler(run_node, stitch(small, large, 0.4, "timestep"), dit_latent)
    positive, negative = (c[0][0] for c in class_conds(run_node))
    noise = official_noise(dit_latent)
    all_four, _ = official_ddim([small, large], 0.4, noise, positive, negative, DIT_CFG, guided_channels=4)
    assert_equal_in_fp32(actual, all_four)
    official, _ = official_ddim([small, large], 0.4, noise, positive, negative, DIT_CFG)
    assert (actual - official).abs().max() > 100 * OFFICIAL_RTOL * official.abs().max()


# --- refusals -------------------------------------------------------------------------------------------------

def test_a_dit_paired_with_an_sd_unet_is_refused_naming_both_conditionings(dits, large_model, stitch):
    with pytest.raises(ValueError, match="different conditioning") as error:
        stitch(dits["S"], large_model, 0.4)
    message = str(error.value)
    assert "a class label (ImageNet Class or Class Index node)" in message and "a text prompt" in message
    with pytest.raises(ValueError, match="different conditioning"):
        stitch(large_model, dits["XL"], 0.4)


def test_a_text_prompt_into_a_dit_says_what_to_connect(dits, run_node, dit_latent, conds):
    with pytest.raises(ValueError, match="ImageNet Class"):
        run_node("KSampler", model=dits["S"], seed=0, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal",
                 positive=conds[0], negative=conds[1], latent_image=dit_latent, denoise=1.0)


@pytest.fixture
def dit_folder(tmp_path, comfy_host):
    import folder_paths

    folder_paths.add_model_folder_path("diffusion_models", str(tmp_path))
    return tmp_path


def save_state_dict(folder, name, state_dict):
    torch.save(state_dict, folder / name)
    return name


@pytest.mark.parametrize("damage, message", [
    ("sd_checkpoint", "holds a Stable Diffusion UNet"),
    ("truncated", r"incomplete DiT \(width 384, 2 blocks\).*blocks\.1\.mlp\.fc2\.weight"),
    ("unknown_width", "width 512, which none of the published DiTs has"),
    ("diffusers_layout", "diffusers' layout"),
])
def test_bad_files_are_refused_at_the_loader_saying_what_was_found(damage, message, dit_folder, run_node):
    from tstitch_dev.models import MINI_SD15_SMALL, DiTSpec, build_unet_state_dict

    state_dict = build_dit_state_dict(TINY_DIT_S)
    if damage == "sd_checkpoint":
        state_dict = {f"model.diffusion_model.{k}": v for k, v in build_unet_state_dict(MINI_SD15_SMALL).items()}
    elif damage == "truncated":
        del state_dict["blocks.1.mlp.fc2.weight"]
    elif damage == "unknown_width":
        state_dict = build_dit_state_dict(DiTSpec("odd", depth=1, width=512, grid_size=4))
    else:
        state_dict = to_diffusers(state_dict, TINY_DIT_S.depth)
    name = save_state_dict(dit_folder, f"{damage}.pt", state_dict)
    with pytest.raises(ValueError, match=message):
        run_node("TStitchDiTLoader", dit_name=name, weight_dtype="default")


@pytest.mark.parametrize("damage, message", [
    ("flat_patch_weight", r"malformed_\w+\.pt is a malformed DiT checkpoint: x_embedder\.proj\.weight has shape \(384,\), "
                          r"where a DiT has 4 dimensions"),
    ("patch_size_0", r"malformed_\w+\.pt is a malformed DiT checkpoint: x_embedder\.proj\.weight has shape "
                     r"\(384, 4, 0, 0\), which is no patch embedding"),
    ("flat_pos_embed", r"malformed_\w+\.pt is a malformed DiT checkpoint: pos_embed has shape \(64,\), where a DiT has 3"),
    ("short_qkv", r"malformed_\w+\.pt is a malformed DiT checkpoint: blocks\.0\.attn\.qkv\.weight has shape \(384, 384\); "
                  r"a DiT of width 384, patch 2 has \(1152, 384\)"),
    ("no_classes", r"malformed_\w+\.pt is a malformed DiT checkpoint: y_embedder\.embedding_table\.weight has shape "
                   r"\(0, 384\)"),
    ("not_weights", r"malformed_\w+\.pt holds a list, not a dictionary of weights"),
    ("not_a_checkpoint", r"T-Stitch DiT loader: malformed_\w+\.pt could not be read as a checkpoint"),
])
def test_malformed_files_are_refused_naming_the_file_and_the_tensor(damage, message, dit_folder, run_node):
    state_dict = build_dit_state_dict(TINY_DIT_S)  # patch 2, width 384
    if damage == "flat_patch_weight":  # was IndexError: tuple index out of range
        state_dict["x_embedder.proj.weight"] = torch.zeros(384)
    elif damage == "patch_size_0":  # was ZeroDivisionError
        state_dict["x_embedder.proj.weight"] = torch.zeros(384, 4, 0, 0)
    elif damage == "flat_pos_embed":
        state_dict["pos_embed"] = torch.zeros(64)
    elif damage == "short_qkv":  # was a size mismatch from load_state_dict
        state_dict["blocks.0.attn.qkv.weight"] = torch.zeros(384, 384)
    elif damage == "no_classes":
        state_dict["y_embedder.embedding_table.weight"] = torch.zeros(0, 384)
    elif damage == "not_weights":
        state_dict = [1, 2, 3]
    if damage == "not_a_checkpoint":
        name = f"malformed_{damage}.pt"  # a name of its own: earlier tests' folders stay registered
        (dit_folder / name).write_bytes(b"not a checkpoint at all")
    else:
        name = save_state_dict(dit_folder, f"malformed_{damage}.pt", state_dict)
    with pytest.raises(ValueError, match=message):
        run_node("TStitchDiTLoader", dit_name=name, weight_dtype="default")


def test_the_loader_asks_comfyui_for_a_safe_load(dit_folder, run_node, monkeypatch):
    # on torch 2.11 load_torch_file always loads weights only; hosts on torch < 2.4 unpickle unless asked
    import comfy.utils

    calls, real = [], comfy.utils.load_torch_file
    monkeypatch.setattr(comfy.utils, "load_torch_file", lambda *a, **k: calls.append(k) or real(*a, **k))
    name = save_state_dict(dit_folder, "safe.pt", build_dit_state_dict(TINY_DIT_S))
    run_node("TStitchDiTLoader", dit_name=name, weight_dtype="default")
    assert calls == [{"safe_load": True, "return_metadata": True}]  # the metadata: dit_heads


def test_a_training_checkpoint_samples_with_its_ema_weights(dit_folder, run_node):
    weights = build_dit_state_dict(TINY_DIT_S)
    scrambled = {k: torch.randn_like(v) for k, v in weights.items()}
    import argparse

    name = save_state_dict(dit_folder, "train.pt", {"model": scrambled, "ema": weights, "opt": {},
                                                    "args": argparse.Namespace(model="DiT-S/2", image_size=256)})
    plain = save_state_dict(dit_folder, "plain.pt", weights)
    x, sigma = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2)), torch.tensor([3.0])
    positive = class_conds(run_node)[0]
    outputs = [denoise_with_pack(run_node("TStitchDiTLoader", dit_name=n, weight_dtype="fp32")[0], x, sigma, positive)
               for n in (name, plain)]
    assert torch.equal(outputs[0], outputs[1])


# --- ComfyUI's machinery on the DiT: manual casting and low-VRAM loading, forced to happen on the CPU ----------

def test_fp16_weights_run_through_comfyui_manual_casting(load_dit, run_node):
    fp32, fp16 = load_dit(TINY_DIT_S, weight_dtype="fp32"), load_dit(TINY_DIT_S, weight_dtype="fp16")
    assert fp16.model.diffusion_model.x_embedder.proj.weight.dtype == torch.float16
    assert fp16.model.manual_cast_dtype is not None  # the CPU computes in another dtype: cast per layer
    x, sigma = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7)), torch.tensor([5.0])
    positive = class_conds(run_node)[0]
    expected = denoise_with_pack(fp32, x, sigma, positive)
    assert_close_to(denoise_with_pack(fp16, x, sigma, positive), expected, rtol=3e-2)


def test_a_low_vram_load_casts_weights_per_layer_and_changes_no_number(load_dit, run_node):
    model = load_dit(TINY_DIT_XL, weight_dtype="fp32")
    x, sigma = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(8)), torch.tensor([5.0])
    positive = class_conds(run_node)[0]
    expected = denoise_with_pack(model, x, sigma, positive)
    low_vram = model.clone()
    low_vram.load(torch.device("cpu"), lowvram_model_memory=1)  # a budget no layer fits in
    try:
        cast_layers = [m for m in low_vram.model.diffusion_model.modules() if getattr(m, "comfy_cast_weights", False)]
        assert len(cast_layers) > 10  # the per-layer casting path really runs
        assert torch.equal(denoise_with_pack(low_vram, x, sigma, positive), expected)
    finally:
        low_vram.detach()
