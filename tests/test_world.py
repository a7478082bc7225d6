"""The synthetic world: rendering, the held-out split, captions and prompts, the evaluator."""

from __future__ import annotations

import random
import re
from itertools import combinations

import pytest
import torch

from sora_core.world import (
    COLOURS,
    MOTIONS,
    SHAPES,
    TEST_TRIPLES,
    TRAIN_TRIPLES,
    Background,
    ObjectSpec,
    Scene,
    canonical_caption,
    degrade,
    detailed_caption,
    detect_objects,
    expand_prompt,
    from_model_range,
    is_held_out,
    paraphrase_prompt,
    parse_prompt,
    prompt_set,
    render,
    sample_clip,
    sample_scene,
    score_clip,
    short_prompt,
    to_model_range,
)
from sora_core.world.evaluate import largest_component
from sora_core.world.lexicon import PARA_DIRECTION, PARA_OTHER_MOTION, PARA_SHAPE, PARA_SIZE, PARA_SPEED
from sora_core.world.motion import SHAPE_EXTENT, object_track
from sora_core.world.parse import fill_defaults, spec_of_scene

SIZES_AND_LENGTHS = [(64, 64, 17), (96, 64, 9), (64, 96, 33), (64, 64, 9), (96, 64, 17), (64, 96, 17)]


def _scene(shape: str, colour: str = "red", motion: str = "still", x: float = 0.5, y: float = 0.5,
           size: str = "large", speed: str = "slow", frames: int = 9) -> Scene:
    return Scene((ObjectSpec(shape, colour, size, motion, speed, x, y),), Background(), 64, 64, frames)


# --- rendering --------------------------------------------------------------------------------------
@pytest.mark.parametrize("width, height, frames", SIZES_AND_LENGTHS)
def test_render_shape_dtype_and_range(width: int, height: int, frames: int) -> None:
    scene = sample_scene(random.Random(0), width=width, height=height, frames=frames)
    clip = render(scene)
    assert clip.shape == (frames, height, width, 3) and clip.dtype == torch.uint8
    video = to_model_range(clip)
    assert video.shape == (3, frames, height, width) and video.min() >= -1 and video.max() <= 1
    assert torch.equal(from_model_range(video), clip)


def test_shapes_render_where_expected() -> None:
    red = torch.tensor(COLOURS["red"], dtype=torch.uint8)
    black = torch.zeros(3, dtype=torch.uint8)
    r = 16  # large radius at 64x64
    frames = {shape: render(_scene(shape))[0] for shape in SHAPES}
    for shape, frame in frames.items():
        assert torch.equal(frame[32, 32], red), shape  # the centre
        assert torch.equal(frame[2, 2], black), shape  # a frame corner
    # near the box corner (45 degrees out): inside the square only
    corner = (32 + int(0.8 * r), 32 + int(0.8 * r))
    assert torch.equal(frames["square"][corner], red)
    assert torch.equal(frames["circle"][corner], black)
    # the triangle points up: wide near its base (below the centre), narrow near its apex
    tri = frames["triangle"]
    assert torch.equal(tri[32 + int(0.5 * r), 32 - int(0.8 * r)], red)
    assert torch.equal(tri[32 - int(1.0 * r), 32 - int(0.5 * r)], black)
    assert torch.equal(tri[32 - int(1.0 * r), 32], red)


def test_motion_moves_the_object() -> None:
    def centroid(clip: torch.Tensor) -> torch.Tensor:
        mask = (clip.float().sum(-1) > 100).float()  # [T, H, W]
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        area = mask.sum((1, 2))
        return torch.stack([(mask * xs).sum((1, 2)) / area, (mask * ys).sum((1, 2)) / area, area], 1)

    right = centroid(render(_scene("circle", motion="right", x=0.3, size="small")))
    assert right[-1, 0] - right[0, 0] > 6 and abs(right[-1, 1] - right[0, 1]) < 0.5
    up_left = centroid(render(_scene("square", motion="up-left", x=0.7, y=0.7, size="small")))
    assert up_left[-1, 0] < up_left[0, 0] - 6 and up_left[-1, 1] < up_left[0, 1] - 6
    bounce = centroid(render(_scene("circle", motion="bounce", y=0.3, size="small", frames=17)))
    assert bounce[8, 1] > bounce[0, 1] + 6 and abs(bounce[-1, 1] - bounce[0, 1]) < 0.5
    fall = bounce[:, 1].diff()  # a dropped ball: at rest at the top, faster every frame down to the floor
    assert fall[0] < 0.5 and (fall[:8].diff() > 0).all() and fall[7] > 4 * fall[1] and (fall[8:] < 0).all()
    grow = centroid(render(_scene("triangle", motion="grow", size="small", speed="fast")))
    assert grow[-1, 2] > 1.5 * grow[0, 2]
    slow = centroid(render(_scene("circle", motion="left", x=0.7, size="small")))
    fast = centroid(render(_scene("circle", motion="left", x=0.7, size="small", speed="fast")))
    assert fast[0, 0] - fast[-1, 0] > 1.8 * (slow[0, 0] - slow[-1, 0])


def test_objects_stay_in_frame_and_apart_at_start() -> None:
    rng = random.Random(1)
    for _ in range(150):
        w, h, t = rng.choice(SIZES_AND_LENGTHS)
        scene = sample_scene(rng, split=rng.choice(("train", "test")), width=w, height=h, frames=t)
        assert 1 <= len(scene.objects) <= 3
        assert len({o.colour for o in scene.objects}) == len(scene.objects)
        boxes = []
        for obj in scene.objects:
            cx, cy, r = object_track(obj, w, h, t)
            left, right, up, down = SHAPE_EXTENT[obj.shape]
            assert (cx - left * r >= 0).all() and (cx + right * r <= w).all()
            assert (cy - up * r >= 0).all() and (cy + down * r <= h).all()
            boxes.append((cx[0], cy[0], max(SHAPE_EXTENT[obj.shape]) * r[0]))
        for (ax, ay, ar), (bx, by, br) in combinations(boxes, 2):
            assert ((ax - bx) ** 2 + (ay - by) ** 2).sqrt() > ar + br


# --- the held-out split -----------------------------------------------------------------------------
def test_held_out_split_keeps_every_pair_in_training() -> None:
    assert 0.15 <= len(TEST_TRIPLES) / (len(TEST_TRIPLES) + len(TRAIN_TRIPLES)) <= 0.2
    train = set(TRAIN_TRIPLES)
    for a, b in combinations(range(3), 2):  # (colour, shape), (colour, motion), (shape, motion)
        needed = {(t[a], t[b]) for t in TEST_TRIPLES + TRAIN_TRIPLES}
        assert needed == {(t[a], t[b]) for t in train}


def test_train_split_never_samples_held_out_triples() -> None:
    rng = random.Random(3)
    seen: set[tuple[str, str, str]] = set()
    for _ in range(1500):
        scene = sample_scene(rng, split="train")
        for obj in scene.objects:
            triple = (obj.colour, obj.shape, obj.motion)
            assert not is_held_out(*triple)
            seen.add(triple)
    for a, b in combinations(range(3), 2):  # every attribute pair was actually sampled
        assert {(t[a], t[b]) for t in TRAIN_TRIPLES} == {(t[a], t[b]) for t in seen}
    for _ in range(200):
        scene = sample_scene(rng, split="test")
        main = scene.objects[0]
        assert is_held_out(main.colour, main.shape, main.motion)
        assert not any(is_held_out(o.colour, o.shape, o.motion) for o in scene.objects[1:])


# --- captions and prompts ---------------------------------------------------------------------------
def test_every_attribute_reaches_the_caption() -> None:
    rng = random.Random(4)
    for _ in range(400):
        scene = sample_scene(rng, split=rng.choice(("train", "test")))
        for caption in (canonical_caption(scene), detailed_caption(scene, rng, p_canonical=0.0)):
            assert fill_defaults(parse_prompt(caption)) == spec_of_scene(scene), caption
            text = caption.lower()
            bg = scene.background
            assert bg.start in text and bg.end in text and (bg.style == "plain" or bg.style in text)
            for obj in scene.objects:
                assert obj.colour in text and obj.shape in text and obj.size in text


def test_canonical_caption_wording() -> None:
    scene = Scene((ObjectSpec("circle", "red", "medium", "right", "slow", 0.3, 0.5),
                   ObjectSpec("triangle", "blue", "small", "up-left", "fast", 0.8, 0.8)),
                  Background("vertical", "navy", "black"), 64, 64, 17)
    assert canonical_caption(scene) == (
        "A medium red circle moves slowly to the right. A small blue triangle moves quickly up and to the left. "
        "The background is a vertical gradient from navy at the top to black at the bottom.")


def test_short_and_paraphrase_expand_to_the_same_caption() -> None:
    rng = random.Random(5)
    for _ in range(600):
        scene = sample_scene(rng, split=rng.choice(("train", "test")))
        short, para = short_prompt(scene, rng), paraphrase_prompt(scene, rng)
        expected = canonical_caption(scene)
        assert expand_prompt(short) == expected, short
        assert expand_prompt(para) == expected, para
        assert expand_prompt(expected) == expected  # the canonical caption is a fixed point


def test_paraphrases_use_other_words() -> None:
    short_words = {"circle", "square", "triangle", "moving", "moves", "going", "bouncing", "bounces", "growing",
                   "grows", "shrinking", "shrinks", "standing", "sitting", "small", "large", "fast", "quickly"}
    para_phrases = {p for v in PARA_SHAPE.values() for p in v} | {p for v in PARA_SIZE.values() for p in v}
    para_phrases |= {p for v in PARA_SPEED.values() for p in v} | {p for v in PARA_DIRECTION.values() for p in v}
    para_phrases |= {p for pairs in PARA_OTHER_MOTION.values() for pair in pairs for p in pair}
    rng = random.Random(6)
    for _ in range(500):
        scene = sample_scene(rng)
        para = paraphrase_prompt(scene, rng).lower()
        assert not short_words & set(re.findall(r"[a-z]+", para)), para
        short = short_prompt(scene, rng).lower()
        assert not any(re.search(rf"\b{re.escape(p)}\b", short) for p in para_phrases), short


def test_expand_prompt_handles_user_text() -> None:
    default = "A medium red circle moves slowly to the right. The background is plain black."
    for text in ("a red circle moves to the right", "Red Circle, moving RIGHT!!", "a red ball drifting rightward",
                 "  a RED disc travels from left to right. "):
        assert expand_prompt(text) == default, text
    assert expand_prompt("a ball") == "A medium white circle stays still. The background is plain black."
    assert expand_prompt("a big blue box going up-left fast on navy") == (
        "A large blue square moves quickly up and to the left. The background is plain navy.")
    for text in ("hello world", "", "two cats on a sofa"):
        assert expand_prompt(text) == text
    assert parse_prompt("nothing to see") is None


# --- the evaluator ----------------------------------------------------------------------------------
def test_evaluator_accuracy_on_rendered_and_degraded_clips() -> None:
    torch.set_num_threads(1)
    rng, gen = random.Random(7), torch.Generator().manual_seed(7)
    n, correct, objects, objects_ok = 320, 0, 0, 0
    for i in range(n):
        w, h, t = rng.choice(SIZES_AND_LENGTHS)
        scene = sample_scene(rng, split=rng.choice(("train", "test")), width=w, height=h, frames=t)
        clip = render(scene)
        if i % 2:  # half of them blurred and grainy like a small model's output
            clip = degrade(clip, gen, blur_sigma=rng.uniform(0.5, 1.3), noise_std=rng.uniform(2, 10))
        result = score_clip(scene, clip)
        correct += result["all_ok"]
        objects += len(scene.objects)
        objects_ok += sum(o["all_ok"] for o in result["objects"])
    assert correct / n >= 0.98
    assert objects_ok / objects >= 0.85  # other objects may be hidden behind the main one for a while


def test_evaluator_finds_nothing_in_noise_or_blank_clips() -> None:
    gen = torch.Generator().manual_seed(8)
    t, h, w = 17, 64, 64
    clips = [
        torch.zeros(t, h, w, 3, dtype=torch.uint8),
        torch.full((t, h, w, 3), 255, dtype=torch.uint8),
        torch.randint(0, 256, (t, h, w, 3), generator=gen, dtype=torch.uint8),
        (torch.randn(t, h, w, 3, generator=gen) * 40 + 30).clamp(0, 255).to(torch.uint8),
        (torch.randn(t, h, w, 3, generator=gen) * 60 + 128).clamp(0, 255).to(torch.uint8),
        from_model_range(torch.randn(3, t, h, w, generator=gen)),  # a sampler's starting noise, decoded as-is
    ]
    for clip in clips:
        assert detect_objects(clip) == []
    result = score_clip(_scene("circle"), clips[2])
    assert not any(result[k] for k in ("colour_ok", "shape_ok", "motion_ok", "present_ok"))


def test_evaluator_judges_a_wrong_clip_as_wrong() -> None:
    asked = _scene("circle", colour="red", motion="right", x=0.3, size="small")
    shown = _scene("square", colour="blue", motion="left", x=0.7, size="small")
    result = score_clip(asked, render(shown))
    assert result["detected"] == {"colour": "blue", "shape": "square", "motion": "left"}
    assert not result["colour_ok"] and not result["shape_ok"] and not result["motion_ok"] and result["present_ok"]


def test_largest_component_keeps_the_biggest_blob() -> None:
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 2:5, 2:5] = True  # 9 pixels
    mask[0, 10:16, 8:18] = True  # 60 pixels
    kept = largest_component(mask)
    assert kept.sum() == 60 and kept[0, 12, 12] and not kept[0, 3, 3]


# --- dataset ----------------------------------------------------------------------------------------
def test_sample_clip_and_prompt_set() -> None:
    frames, scene, caption = sample_clip(random.Random(9), "train", 96, 64, 17)
    assert frames.shape == (17, 64, 96, 3) and fill_defaults(parse_prompt(caption)) == spec_of_scene(scene)
    short = prompt_set(60, seed=1, kind="short")
    para = prompt_set(60, seed=1, kind="paraphrase")
    assert [c.scene for c in short] == [c.scene for c in para] == [c.scene for c in prompt_set(60, seed=1)]
    assert len({(c.scene.objects[0].colour, c.scene.objects[0].shape, c.scene.objects[0].motion)
                for c in short}) == 48  # all held-out triples, cycled
    for s, p in zip(short, para, strict=True):
        main = s.scene.objects[0]
        assert is_held_out(main.colour, main.shape, main.motion) and len(s.scene.objects) == 1
        assert s.caption == p.caption == canonical_caption(s.scene) and s.prompt != p.prompt
    assert len(MOTIONS) == 12
