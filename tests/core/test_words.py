from segstudio.core.words import count


def test_one_is_singular_everything_else_plural():
    assert count(1, "image") == "1 image"
    assert [count(n, "image") for n in (0, 2, 11)] == ["0 images", "2 images", "11 images"]
    assert count(1, "class", "classes") == "1 class" and count(3, "class", "classes") == "3 classes"
