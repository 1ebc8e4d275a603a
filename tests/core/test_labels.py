import itertools
import json

import numpy as np
import pytest

from segstudio.core.labels import NUCLEUS_COLOR, ClassTable, LabelClass, color_difference, new_mask


def _distance(a, b):
    return float(np.linalg.norm(np.subtract(a, b, dtype=float)))


def test_default_table_is_background_and_nucleus():
    table = ClassTable.default()
    assert [(c.id, c.name) for c in table] == [(0, "background"), (1, "nucleus")]
    assert len(table) == 2 and table.ids() == [0, 1] and table.max_id == 1
    assert table.get(1).color != table.get(0).color


def test_added_classes_get_new_ids_and_clearly_different_colours():
    table = ClassTable.default()
    added = [table.add(f"class {i}") for i in range(30)]
    assert [c.id for c in added] == list(range(2, 32))
    colors = [c.color for c in table]
    assert len(set(colors)) == len(colors)
    assert all(_distance(c, (0, 0, 0)) > 0 for c in colors[1:])
    # the first classes a technician adds look clearly different; the first couple of dozen stay apart
    assert min(color_difference(a, b) for a, b in itertools.combinations(colors[:7], 2)) >= 50
    assert min(color_difference(a, b) for a, b in itertools.combinations(colors[1:20], 2)) >= 25


def test_the_default_nucleus_has_the_bundled_models_colour_and_a_new_class_looks_nothing_like_it():
    table = ClassTable.default()
    assert table.get(1).color == NUCLEUS_COLOR
    added = table.add("mitosis").color
    # Not crimson or pink next to magenta: far apart in perceived colour, not only in RGB numbers.
    assert color_difference(added, NUCLEUS_COLOR) > 100
    assert color_difference((230, 25, 75), NUCLEUS_COLOR) < 65  # what the first new class used to get


def test_a_new_colour_keeps_away_from_whatever_colours_the_user_chose():
    table = ClassTable.default()
    table.recolor(1, (60, 180, 75))  # the user made nuclei green, the palette's first colour
    table.add("membrane", color=(255, 225, 25))  # and a yellow class
    new = table.add("other").color
    assert min(color_difference(new, c.color) for c in table if c.name != "other") >= 50


def test_colour_difference_is_measured_in_cielab():
    from segstudio.core.labels import rgb_to_lab

    # Reference values for sRGB primaries under D65.
    assert rgb_to_lab((255, 0, 0)) == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert rgb_to_lab((0, 0, 255)) == pytest.approx([32.30, 79.19, -107.86], abs=0.05)
    assert color_difference((255, 255, 255), (0, 0, 0)) == pytest.approx(100, abs=0.01)


def test_colours_never_repeat_even_with_many_classes():
    table = ClassTable.default()
    for i in range(120):
        table.add(f"class {i}")
    colors = [c.color for c in table]
    assert len(set(colors)) == len(colors) == 122


def test_ids_stay_stable_when_classes_are_removed_renamed_or_moved():
    table = ClassTable.default()
    table.add("stroma")  # 2
    table.add("tumour")  # 3
    table.add("necrosis")  # 4
    table.remove(3)
    table.rename(2, "connective tissue")
    table.move(4, 1)
    assert table.ids() == [0, 4, 1, 2]
    assert table.get(2).name == "connective tissue"
    assert table.add("vessel").id == 5  # not 3: old masks may still hold 3
    assert 3 not in table


def test_mask_dtype_grows_to_uint16_above_id_255():
    entries = [{"id": i, "name": f"c{i}", "color": [i, 255 - i, 7]} for i in range(1, 256)]
    table = ClassTable.from_list([{"id": 0, "name": "background", "color": [0, 0, 0]}] + entries)
    assert table.max_id == 255
    assert table.mask_dtype == np.uint8
    assert new_mask((4, 5), table).dtype == np.uint8
    table.add("one more")
    assert table.max_id == 256
    assert table.mask_dtype == np.uint16
    mask = new_mask((4, 5), table)
    assert mask.dtype == np.uint16 and mask.shape == (4, 5) and not mask.any()


def test_new_mask_from_a_class_count():
    assert new_mask((3, 2), 2).dtype == np.uint8
    assert new_mask((3, 2), 256).dtype == np.uint8
    assert new_mask((3, 2), 257).dtype == np.uint16
    with pytest.raises(ValueError, match="at least one class"):
        new_mask((3, 2), 0)
    with pytest.raises(ValueError, match="shape"):
        new_mask((3, 0), 2)


def test_lut_colours_a_mask_with_transparent_background():
    table = ClassTable.default()
    table.add("stroma", color=(10, 20, 30))
    table.add("tumour", color="#ff8000")
    table.remove(2)
    lut = table.lut_rgba(opacity=0.5)
    assert lut.shape == (4, 4) and lut.dtype == np.uint8
    assert lut[0, 3] == 0
    assert tuple(lut[3]) == (255, 128, 0, 128)
    assert tuple(lut[1, :3]) == table.get(1).color and lut[1, 3] == 128
    assert lut[2, 3] == 0  # removed id: nothing drawn
    mask = np.array([[0, 1], [3, 2]], dtype=np.uint8)
    overlay = lut[mask]
    assert overlay.shape == (2, 2, 4)
    assert tuple(overlay[1, 0]) == (255, 128, 0, 128)
    assert table.lut_rgba()[1, 3] == 255
    with pytest.raises(ValueError, match="opacity"):
        table.lut_rgba(1.5)


def test_list_round_trip_keeps_ids_names_colours_and_order():
    table = ClassTable.default()
    table.add("stroma")
    table.add("tumour", color=(1, 2, 3))
    table.move(3, 1)
    text = json.dumps(table.to_list())
    restored = ClassTable.from_list(json.loads(text))
    assert restored == table
    assert restored.ids() == [0, 3, 1, 2]
    assert restored.get(3).color == (1, 2, 3)
    assert restored.to_list()[1] == {"id": 3, "name": "tumour", "color": [1, 2, 3]}


def test_background_cannot_be_removed_renamed_or_moved():
    table = ClassTable.default()
    with pytest.raises(ValueError, match="background.*cannot be removed"):
        table.remove(0)
    with pytest.raises(ValueError, match="background.*cannot be renamed"):
        table.rename(0, "tissue")
    with pytest.raises(ValueError, match="background"):
        table.move(0, 1)
    with pytest.raises(ValueError, match="position 0"):
        table.move(1, 0)
    table.recolor(0, (5, 5, 5))  # only its colour may change (it is never drawn)
    assert table.get(0).name == "background"


def test_table_without_background_is_rejected():
    with pytest.raises(ValueError, match="background class"):
        ClassTable.from_list([{"id": 1, "name": "nucleus", "color": [255, 0, 0]}])
    with pytest.raises(ValueError, match="background class"):
        ClassTable([LabelClass(1, "nucleus", (255, 0, 0))])


def test_background_is_put_first_whatever_the_input_order():
    table = ClassTable.from_list([
        {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
        {"id": 0, "name": "background", "color": [0, 0, 0]},
    ])
    assert table.ids() == [0, 1]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.add("Nucleus"), "already exists"),
        (lambda t: t.add("   "), "cannot be empty"),
        (lambda t: t.add("x" * 65), "longer than 64"),
        (lambda t: t.add("stroma", color=(300, 0, 0)), "outside 0..255"),
        (lambda t: t.add("stroma", color=(1, 2)), "three integers"),
        (lambda t: t.add("stroma", color="red"), "#rrggbb"),
        (lambda t: t.recolor(1, (0.5, 0, 0)), "three integers"),
        (lambda t: t.rename(1, "background"), "already exists"),
        (lambda t: t.get(7), r"no class with id 7 \(ids in use: 0, 1\)"),
        (lambda t: t.remove(7), "no class with id 7"),
        (lambda t: t.move(1, 5), "out of range"),
    ],
)
def test_bad_changes_are_refused_with_a_clear_message(change, message):
    table = ClassTable.default()
    before = table.to_list()
    with pytest.raises(ValueError, match=message):
        change(table)
    assert table.to_list() == before


@pytest.mark.parametrize(
    "entries, message",
    [
        ([{"id": 0, "name": "background"}], "needs 'id', 'name' and 'color'"),
        ([{"id": "0", "name": "background", "color": [0, 0, 0]}], "non-integer id"),
        ([{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 0, "name": "x", "color": [1, 1, 1]}],
         "used twice"),
        ([{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 70000, "name": "x", "color": [1, 1, 1]}],
         "out of range"),
        ([{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "x", "color": [1, 1]}],
         r"class entry 1 \('x'\)"),
    ],
)
def test_invalid_class_lists_are_rejected(entries, message):
    with pytest.raises(ValueError, match=message):
        ClassTable.from_list(entries)


def test_rename_keeps_the_id_and_allows_changing_case():
    table = ClassTable.default()
    table.rename(1, "Nucleus")
    assert table.get(1).name == "Nucleus"
    table.rename(0, "background")  # a no-op rename of background is harmless
    assert table.names() == ["background", "Nucleus"]


def test_copy_is_independent():
    table = ClassTable.default()
    clone = table.copy()
    clone.rename(1, "cell")
    clone.add("stroma")
    assert table.names() == ["background", "nucleus"]
    assert clone != table


def test_a_table_of_sixty_thousand_classes_is_built_in_linear_time(monkeypatch):
    """Each name is cleaned and looked up once (the quadratic version compared every pair and took minutes);
    counted, not timed."""
    from segstudio.core import labels

    cleaned = []
    real = labels._plain_name
    monkeypatch.setattr(labels, "_plain_name", lambda name: cleaned.append(name) or real(name))
    entries = [{"id": i, "name": f"class {i}", "color": [i % 256, (i // 256) % 256, 7]} for i in range(60_000)]
    entries[0]["name"] = "background"
    table = ClassTable.from_list(entries)
    assert len(table) == 60_000
    assert len(cleaned) <= 60_000
    with pytest.raises(ValueError, match="used twice"):
        ClassTable.from_list(entries + [{"id": 5, "name": "again", "color": [1, 2, 3]}])
    with pytest.raises(ValueError, match="already exists"):
        ClassTable.from_list(entries + [{"id": 60_001, "name": "CLASS 7", "color": [1, 2, 3]}])
