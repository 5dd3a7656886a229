"""The DiT pair trained here (tstitch_dev/digits.py): its training pipeline on a budget of a few steps (the
pipeline, not the quality), the quality measure against hand computations, the pack loading a DiT with 10
classes and its Class Index node, and the quality curve's ends equal to each model alone, bit for bit,
through ComfyUI."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import numpy as np
import pytest
import torch

from tstitch_dev import digits


@pytest.fixture(scope="module")
def short_pair(tmp_path_factory):
    """The pair's recipes trained for 3 steps into a folder of this test run: (small path, large path)."""
    small, large = digits.short_recipes(steps=3)
    return digits.ensure_pair(tmp_path_factory.mktemp("digits"), log=None, small=small, large=large)


@pytest.fixture(scope="module")
def loaded_pair(comfy_host, short_pair):
    small_path, large_path = short_pair
    return digits.load_trained(small_path), digits.load_trained(large_path)


def test_short_training_writes_a_pair_in_dits_checkpoint_layout(short_pair):
    from safetensors.torch import load_file

    from tstitch_core.dit import read_dit_shape

    shapes = []
    for path, recipe, name in zip(short_pair, digits.short_recipes(steps=3), (digits.SMALL_NAME, digits.LARGE_NAME)):
        assert path.name == recipe.file_name(name)
        state_dict = load_file(path)
        metadata = digits.read_metadata(path)
        # the width is no published DiT's: the file records its heads, and its recipe
        assert metadata["dit_heads"] == "4" and metadata["tstitch_recipe_digest"] == recipe.digest()
        shape = read_dit_shape({k: tuple(v.shape) for k, v in state_dict.items()}, heads=metadata["dit_heads"])
        assert shape.heads == 4
        shapes.append((shape.depth, shape.width, shape.patch_size, shape.in_channels, shape.out_channels,
                       shape.grid_size, shape.class_rows))
        # trained: the adaLN-Zero layers start at zero and the steps moved them
        assert state_dict["final_layer.linear.weight"].abs().max() > 0
        assert state_dict["pos_embed"].dtype == torch.float32
        assert state_dict["blocks.0.attn.qkv.weight"].dtype == torch.float16
    # 10 digits and the null class; learned sigma: 8 channels out of 4
    assert shapes == [(digits.SMALL.depth, 256, 2, 4, 8, 4, 11), (digits.LARGE.depth, 256, 2, 4, 8, 4, 11)]
    assert digits.SMALL.depth < digits.LARGE.depth


def test_a_cached_model_is_reused_not_retrained(short_pair, monkeypatch):
    monkeypatch.setattr(digits, "train", lambda *args, **kwargs: pytest.fail("trained again"))
    small, large = digits.short_recipes(steps=3)
    assert digits.ensure_pair(short_pair[0].parent, log=None, small=small, large=large) == short_pair


def test_the_training_network_is_the_packs_network(comfy_host, tmp_path):
    """DigitsDiT (trained in plain torch) and the pack's DiT loaded from its file compute the same thing."""
    recipe = digits.Recipe(depth=2, seed=5)
    network = digits.build_network(recipe)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # adaLN-Zero starts at zero: give every weight a value
        for name, param in network.named_parameters():
            if name != "pos_embed":
                param.copy_(torch.randn(param.shape, generator=generator) * param[0].numel() ** -0.5)
    path = digits.save_checkpoint(network.state_dict(), tmp_path / "check.safetensors", recipe)
    from safetensors.torch import load_file

    network.load_state_dict({k: v.float() for k, v in load_file(path).items()})  # fp16-rounded
    pack = digits.load_trained(path).model.diffusion_model

    x = torch.randn(3, 4, 8, 8, generator=generator)
    t = torch.tensor([999.0, 500.0, 3.0])
    labels = torch.tensor([0, 7, 10])
    with torch.no_grad():
        expected = network(x, t, labels)[:, :4]
        got = pack(x, t, context=torch.nn.functional.one_hot(labels, 11).float()[:, None])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_digits_fill_all_four_channels_and_come_back_from_ksamplers_scale():
    images, labels = digits.load_digit_images()
    assert images.shape == (1797, 8, 8) and images.min() == -1.0 and images.max() == 1.0
    assert sorted(set(labels.tolist())) == list(range(10))
    latents = digits.digits_to_latents(images[:5])
    assert latents.shape == (5, 4, 8, 8) and all(torch.equal(latents[:, c], latents[:, 0]) for c in range(4))
    # KSampler hands back latents divided by SD's 0.18215; out-of-range ink is clipped
    back = digits.samples_to_digits(latents / 0.18215 * torch.tensor([1.0, 1.0, 1.0, 3.0])[:, None, None])
    expected = (torch.as_tensor(images[:5]) * 1.5).clamp(-1, 1)
    torch.testing.assert_close(back, expected, atol=1e-6, rtol=0)


def test_frechet_distance_of_gaussians_with_known_moments():
    # diagonal covariances: |m_a - m_b|^2 + sum((sqrt(a) - sqrt(b))^2)
    assert digits.frechet_distance([0, 0], np.diag([4.0, 9.0]), [3, 4], np.diag([1.0, 1.0])) == pytest.approx(
        25 + (2 - 1) ** 2 + (3 - 1) ** 2, abs=1e-12)
    # one dimension: (m_a - m_b)^2 + (s_a - s_b)^2
    assert digits.frechet_distance([1.0], [[0.25]], [-1.0], [[4.0]]) == pytest.approx(4 + 1.5 ** 2, abs=1e-12)
    # correlated covariances against scipy's matrix square root of the (non-symmetric) product
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov_a, cov_b = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mean_a, mean_b = rng.normal(size=5), rng.normal(size=5)
    reference = (((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2 * np.trace(sqrtm(cov_a @ cov_b).real))
    assert digits.frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(reference, rel=1e-9)
    assert digits.frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0, abs=1e-9)


def test_feature_statistics_are_the_sample_mean_and_unbiased_covariance():
    features = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])
    mean, covariance = digits.feature_statistics(features)
    assert mean.tolist() == [3.0, 4.0]
    # deviations (-2, -2), (0, -2), (2, 4): sums of products over n - 1 = 2
    np.testing.assert_allclose(covariance, [[4.0, 6.0], [6.0, 12.0]], atol=1e-12)


def test_classifier_features_predictions_and_accuracy_by_hand():
    # two features (pixel 0 and pixel 1 through a ReLU), class = the larger one
    w0 = np.zeros((64, 2))
    w0[0, 0] = w0[1, 1] = 1.0
    classifier = digits.DigitsClassifier([w0, np.eye(2)], [np.zeros(2), np.zeros(2)], 0.0,
                                         np.zeros(2), np.eye(2))
    images = np.zeros((3, 8, 8))
    images[0, 0, 0], images[1, 0, 1], images[2, 0, 0] = 0.9, 0.5, -0.4  # the last: ReLU leaves (0, 0)
    np.testing.assert_array_equal(classifier.features(images), [[0.9, 0], [0, 0.5], [0, 0]])
    assert classifier.predict(images).tolist() == [0, 1, 0]
    assert classifier.accuracy(images, [0, 1, 1]) == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def classifier():
    return digits.train_classifier()


def test_classifier_trained_on_real_digits_recognises_held_out_ones(classifier):
    assert classifier.held_out_accuracy > 0.95
    images, _ = digits.load_digit_images()
    assert classifier.features(images).shape == (1797, digits.CLASSIFIER_HIDDEN)
    # real digits are their own distribution: near 0, far below noise's distance
    assert classifier.frechet_distance(images) == pytest.approx(0, abs=1e-6)
    noise = np.random.default_rng(0).uniform(-1, 1, size=(500, 8, 8))
    assert classifier.frechet_distance(noise) > 10 * digits.frechet_distance(
        *digits.feature_statistics(classifier.features(images[::2])),
        *digits.feature_statistics(classifier.features(images[1::2])))


def test_class_index_node_conditions_on_the_models_own_classes(loaded_pair, run_node):
    small, large = loaded_pair
    positive, negative = run_node("TStitchClassIndex", model=large, class_index=7)
    assert positive[0][0].shape == negative[0][0].shape == (1, 1, 11)
    assert positive[0][0][0, 0].nonzero().flatten().tolist() == [7]
    assert negative[0][0][0, 0].nonzero().flatten().tolist() == [10]  # the null class, last
    # a pair's classes are its large model's
    pair = run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=0.5,
                    switch_by="timestep")[0]
    assert torch.equal(run_node("TStitchClassIndex", model=pair, class_index=7)[0][0][0], positive[0][0])


def test_class_index_node_refuses_a_class_the_model_lacks_and_a_model_without_classes(loaded_pair, run_node,
                                                                                    small_model):
    with pytest.raises(ValueError, match=r"Class Index \(T-Stitch\): class 10 is not one of this DiT's 10 classes "
                                         r"\(0 to 9.*Pick a class index from 0 to 9"):
        run_node("TStitchClassIndex", model=loaded_pair[1], class_index=10)
    with pytest.raises(ValueError, match=r"Class Index \(T-Stitch\): the connected model is .*not a DiT"):
        run_node("TStitchClassIndex", model=small_model, class_index=0)


def test_an_imagenet_conditioning_on_a_ten_class_dit_names_the_class_index_node(loaded_pair, run_node):
    positive, negative = run_node("TStitchImageNetClass", class_name="1 goldfish")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    with pytest.raises(ValueError, match=r"10 classes and the null class: 11 class weights.*1001 wide.*"
                                         r"Class Index \(T-Stitch\) node"):
        run_node("KSampler", model=loaded_pair[1], seed=0, steps=1, cfg=1.0, sampler_name="euler",
                 scheduler="normal", positive=positive, negative=negative, latent_image=latent, denoise=1.0)


def test_the_curves_ends_are_each_model_alone_bit_for_bit(loaded_pair, run_node):
    small, large = loaded_pair
    sampling = digits.Sampling(steps=3, per_class=2)
    conditionings = digits.class_conditionings(large)[:3]  # three digits are enough for the routing

    def pair(fraction):
        return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                        switch_by="timestep")[0]

    alone = {name: digits.sample_digits(model, conditionings, sampling, seed=4)[0]
             for name, model in (("large", large), ("small", small))}
    assert not np.array_equal(alone["large"], alone["small"])  # the models differ, so the test can fail
    assert np.array_equal(digits.sample_digits(pair(0.0), conditionings, sampling, seed=4)[0], alone["large"])
    assert np.array_equal(digits.sample_digits(pair(1.0), conditionings, sampling, seed=4)[0], alone["small"])
    # the curve's own ends are the models themselves
    assert digits.stitched_model(small, large, 0.0) is large and digits.stitched_model(small, large, 1.0) is small
    stitched = digits.sample_digits(pair(0.5), conditionings, sampling, seed=4)[0]
    assert not np.array_equal(stitched, alone["large"]) and not np.array_equal(stitched, alone["small"])


# --- the shipped pair (tstitch_dev/digits_pair/): the repository's one model file, made by ./tstitch train-digits ---


def test_the_shipped_pair_is_what_the_current_recipes_train_and_fits_its_size():
    """A recipe changed without retraining is caught here: each file records the digest of the recipe it was
    trained by (CPU training is not bitwise reproducible across machines, so the bits are not compared)."""
    small_path, large_path = digits.shipped_pair()
    for path, recipe in ((small_path, digits.SMALL), (large_path, digits.LARGE)):
        metadata = digits.read_metadata(path)
        assert metadata["tstitch_recipe_digest"] == recipe.digest()
        assert json.loads(metadata["tstitch_recipe"]) == dataclasses.asdict(recipe)
        assert metadata["dit_heads"] == str(recipe.heads)
    assert small_path.stat().st_size + large_path.stat().st_size <= digits.SHIPPED_LIMIT_BYTES
    assert digits.SMALL.depth < digits.LARGE.depth and digits.SMALL.width == digits.LARGE.width


def test_a_changed_recipe_names_the_command_that_retrains(monkeypatch):
    monkeypatch.setitem(digits.SHIPPED, digits.LARGE_NAME, dataclasses.replace(digits.LARGE, steps=1))
    with pytest.raises(ValueError, match=r"digits-dit-large.safetensors was trained by recipe \w+, and "
                                         r"tstitch_dev/digits.py now says \w+: run ./tstitch train-digits"):
        digits.shipped_pair()


def test_the_shipped_files_are_kept_in_git_and_out_of_the_registry_archive():
    from tstitch_dev.host import PACK_ROOT

    tracked = subprocess.run(["git", "ls-files", "tstitch_dev/digits_pair"], cwd=PACK_ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    if tracked:  # a clone (CI's, a user's): exactly the pair; an archive has no git to ask
        assert sorted(tracked) == ["tstitch_dev/digits_pair/digits-dit-large.safetensors",
                                   "tstitch_dev/digits_pair/digits-dit-small.safetensors"]
    ignored = (PACK_ROOT / ".comfyignore").read_text().split()
    assert "tstitch_dev/digits_pair/" in ignored


@pytest.mark.parametrize("name", [digits.SMALL_NAME, digits.LARGE_NAME])
def test_the_shipped_models_load_through_the_pack_and_score_above_their_thresholds(comfy_host, classifier, name):
    """Through the pack's DiT loader (the heads from the file's metadata), Class Index and KSampler: 10 samples of
    each digit at the curve's settings, one seed; seconds, not the curve's minutes."""
    path = digits.shipped_path(name)
    with torch.inference_mode():
        accuracy, frechet = digits.score(path, classifier, digits.Sampling(per_class=10), seed=0)
    least, most = digits.THRESHOLDS[name]
    assert accuracy >= least and frechet <= most, (name, accuracy, frechet)
