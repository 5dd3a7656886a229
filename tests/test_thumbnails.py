"""The example thumbnails (the template browser's pictures): each shows who runs which step of its example, as the
generator draws it from the committed JSON, at a size the template browser's card shows legibly; none is a
screenshot of a graph or of a random-weight result."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFont

from tstitch_dev.examples import EXAMPLES, example_path

pytestmark = pytest.mark.latest_host_only  # the committed files, the same on every host: once a run

CARD_SHOWN_WIDTH = 264  # the picture's width on a template card, measured in frontend 1.49.6 (264 to 277 pixels)


@pytest.fixture(scope="module")
def thumbnails(comfy_nodes):
    from tstitch_dev import thumbnails

    return thumbnails


@pytest.fixture(scope="module")
def drawing(thumbnails):
    return thumbnails.pack("nodes._drawing")


def drawn_share(image: Image.Image, drawing) -> float:
    """The share of pixels in the drawing's own colours (JPEG's ringing aside): near 1 for a drawn schedule, far
    below for a screenshot of a graph or a noisy sample."""
    palette = np.array([drawing.BACKGROUND, drawing.FOREGROUND, drawing.GRID, *drawing.STAGE_COLORS], dtype=np.int16)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16).reshape(-1, 1, 3)
    return float((np.abs(pixels - palette).max(axis=-1).min(axis=-1) <= 40).mean())


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_each_thumbnail_is_what_the_generator_draws_from_the_committed_json(name, thumbnails, comfy_nodes, drawing):
    path = example_path(name, ".jpg")
    assert path.exists(), f"{name}: no thumbnail; run python -m tstitch_dev.thumbnails"
    picture = thumbnails.picture_of(json.loads(example_path(name).read_text()), comfy_nodes.NODE_CLASS_MAPPINGS)
    assert thumbnails.described(path) == picture.describe(), f"{name}: redraw it with python -m tstitch_dev.thumbnails"
    with Image.open(path) as committed:
        assert committed.size == drawing.CARD_SIZE
        shown = np.asarray(committed.convert("RGB"), dtype=np.float32)
        assert drawn_share(committed, drawing) > 0.95
    fresh = np.asarray(thumbnails.draw(picture), dtype=np.float32)
    assert np.abs(shown - fresh).mean() < 2.0  # the same drawing, JPEG's losses aside


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_each_thumbnail_names_its_models_and_every_step_in_legible_text(name, thumbnails, comfy_nodes, drawing):
    picture = thumbnails.picture_of(json.loads(example_path(name).read_text()), comfy_nodes.NODE_CLASS_MAPPINGS)
    width = drawing.CARD_SIZE[0]
    assert min(drawing.CARD_FONTS.values()) * CARD_SHOWN_WIDTH / width >= 12  # pixels of text on the card
    for text, size in [(picture.title, drawing.CARD_FONTS["title"]),
                       *((line, drawing.CARD_FONTS["legend"]) for line in picture.legend)]:
        assert ImageFont.load_default(size=size).getlength(text) + 2 * size + 40 <= width, f"{name}: {text!r} too wide"
    steps = {len(stages) for _, stages in picture.rows}
    assert len(steps) == 1 and steps.pop() >= 1


def test_a_schedule_shows_each_models_steps_as_the_pack_routes_them(thumbnails, comfy_nodes):
    by_name = {example.name: thumbnails.picture_of(json.loads(example_path(example.name).read_text()),
                                                   comfy_nodes.NODE_CLASS_MAPPINGS) for example in EXAMPLES}
    assert by_name["sd15_bk-sdm-tiny_pair"].legend == ["BK-SDM-Tiny: 10 steps (40%)", "SD v1.4: 15 steps (60%)"]
    assert by_name["sd15_bk-sdm-tiny_pair"].rows == [("", [0] * 10 + [1] * 15)]
    # large, small, large: one model in one colour, the large model's
    assert by_name["sd15_stages_large_small_large"].legend == ["BK-SDM-Tiny: 13 steps (52%)",
                                                                "SD v1.4: 5 + 7 steps (48%)"]
    assert by_name["sd15_stage_sigmas_4_16"].title == "4 + 16 steps, fixed"
    assert by_name["dit_s_b_xl_40_40_20"].legend == ["DiT-S/2: 40 steps (40%)", "DiT-B/2: 40 steps (40%)",
                                                      "DiT-XL/2: 20 steps (20%)"]
    # the sweep: a strip per fraction; the probe: no split drawn before the probe gives one
    assert [label for label, _ in by_name["sd15_fraction_sweep"].rows] == ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    assert set(by_name["sd15_probe_then_pair"].rows[0][1]) == {-1}


def test_a_screenshot_or_noise_is_not_taken_for_a_drawn_schedule(drawing):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*drawing.CARD_SIZE[::-1], 3), dtype=np.uint8))
    assert drawn_share(noise, drawing) < 0.2
