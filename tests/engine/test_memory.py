"""The memory budget: what --max-memory accepts and refuses, the default, and the tile choice."""

from __future__ import annotations

import pytest

from impasto.engine import memory
from impasto.errors import InputError

G = 2**30


@pytest.mark.parametrize(
    "text, size",
    [
        ("8G", 8 * G),
        ("8g", 8 * G),
        ("8GB", 8 * G),
        ("8GiB", 8 * G),
        (" 1.5G ", int(1.5 * G)),
        ("2048M", 2 * G),
        ("3145728K", 3 * G),
        ("1T", 1024 * G),
        (str(4 * G), 4 * G),
        (4 * G, 4 * G),
    ],
)
def test_sizes_people_write_are_read_in_powers_of_1024(text, size):
    assert memory.parse_size(text) == size


@pytest.mark.parametrize(
    "text, message",
    [
        ("8X", "'8X' is not a memory size like 8G"),
        ("lots", "'lots' is not a memory size"),
        ("nan", "'nan' is not a memory size"),
        ("inf", "'inf' is not a memory size"),
        ("-2G", "'-2G' is not a memory size"),
        ("0", "must be a finite size greater than 0"),
        (float("nan"), "must be a finite size greater than 0"),
        ("1e400G", "must be a finite size greater than 0"),
        (True, "must be a memory size like 8G"),
        ("100M", "100M is less than impasto itself needs"),
    ],
)
def test_bad_sizes_are_one_line_naming_the_option(text, message):
    with pytest.raises(InputError) as err:
        memory.parse_size(text, "--max-memory")
    assert message in str(err.value) and str(err.value).startswith("--max-memory")
    assert "\n" not in str(err.value)


def test_the_default_budget_leaves_a_margin_of_the_free_memory(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 10 * G)
    assert memory.default_budget() == 8 * G
    monkeypatch.setattr(memory, "available", lambda: None)  # not Linux
    assert memory.default_budget() == 8 * G
    monkeypatch.setattr(memory, "available", lambda: G // 2)  # nearly nothing free
    assert memory.default_budget() == memory.BASE


def test_free_memory_is_read_from_the_kernel():
    free = memory.available()
    if free is None:
        pytest.skip("no /proc/meminfo on this system")
    assert 0 < free < 2**50


def test_small_pictures_are_not_tiled_and_big_ones_are_within_the_budget():
    plan = memory.choose_tile((512, 384), 80, 16, "bfloat16", 8 * G)
    assert plan.tile is None and plan.estimate <= 8 * G
    plan = memory.choose_tile((4096, 4096), 80, 16, "bfloat16", 8 * G)
    assert plan.tile is not None and plan.tile % 16 == 0 and plan.estimate <= 8 * G
    # The largest tiles that fit: one alignment step more would not.
    bigger = min(plan.tile + 16 + 160, 4096) ** 2
    assert memory.estimate(4096 * 4096, bigger, "bfloat16") > 8 * G
    # Less memory, smaller tiles; float32 needs more than bfloat16.
    assert memory.choose_tile((4096, 4096), 80, 16, "bfloat16", 6 * G).tile < plan.tile
    assert memory.choose_tile((4096, 4096), 80, 16, "float32", 8 * G).tile < plan.tile


def test_a_budget_too_small_for_any_tile_says_what_would_do():
    with pytest.raises(InputError, match=r"8192x8192 px needs at least 1\d\.\dG of memory"):
        memory.choose_tile((8192, 8192), 80, 16, "bfloat16", 8 * G)


def test_the_doors_size_limit_follows_the_budget():
    at8 = memory.largest_side(8 * G, "bfloat16")
    assert 4096 <= at8 < 8192  # 4096x4096 fits in 8G; 8192x8192 does not
    assert memory.largest_side(32 * G, "bfloat16") > 8192
    assert memory.largest_side(8 * G, "bfloat16", aspect=2.0) > at8
    for side in (at8, 2 * at8):
        w = h = side
        fits = memory.estimate(w * h, 512**2, "bfloat16") <= 8 * G
        assert fits == (side == at8)


def test_one_budget_for_every_door_the_jobs_own_then_the_doors_then_the_free_memory(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 10 * G)
    assert memory.budget() == 8 * G
    assert memory.budget(None, 3 * G) == 3 * G  # the hot folder's daemon, the web server
    assert memory.budget(2 * G, 3 * G) == 2 * G  # the job's own: a preset's, --max-memory


def test_a_style_larger_than_the_picture_is_counted_and_tiled_too():
    alone = memory.choose_tile((512, 384), 80, 16, "float32", 8 * G)
    # Positive control: a style the picture's size changes nothing but what it holds.
    same = memory.choose_tile((512, 384), 80, 16, "float32", 8 * G, styles=[(512, 384)])
    assert same.tile is None and same.estimate == alone.estimate + 512 * 384 * memory.STYLE_BYTES
    # A 4096 px style: its Gram pass (about 17 GB whole) decides, and tiles keep it in 8G.
    big = memory.choose_tile((512, 384), 80, 16, "float32", 8 * G, styles=[(4096, 4096)])
    assert big.tile is not None and big.estimate <= 8 * G
    assert memory.estimate(512 * 384, 512 * 384, "float32", 4096 * 4096) > 8 * G
