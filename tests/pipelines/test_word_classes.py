"""The word classes of the masked-word diagnostics on the synthetic scenes: every word that depends on the
image (colour, shape, size, pattern, count, relation, place in the image) is content; only the caption
templates' own words count as template."""

from __future__ import annotations

import re

from lgvq_data.sources.synthetic import SceneGenerator
from pipelines.evaluate import synthetic_word_classes

# The words the caption templates add whatever the scene holds (lgvq_data.sources.scenes.make_captions).
TEMPLATE_WORDS = {
    "a", "an", "and", "are", "at", "background", "colored", "image", "is", "near", "of", "on", "picture",
    "shape", "shapes", "shows", "sign", "the", "there", "to", "toward",
}  # fmt: skip


def _caption_words(rows: int) -> set[str]:
    generator = SceneGenerator(image_size=32, seed=0)
    words: set[str] = set()
    for index in range(rows):
        for caption in generator.row(index, "train")["captions"]:
            words |= set(re.findall(r"[a-z]+", caption))
    return words


def test_every_image_dependent_caption_word_is_content() -> None:
    classes = synthetic_word_classes()
    content = set().union(*classes.values())
    words = _caption_words(300)
    assert words - content == TEMPLATE_WORDS
    assert not TEMPLATE_WORDS & content


def test_places_in_the_image_are_position_words() -> None:
    position = synthetic_word_classes()["position"]
    assert {"top", "bottom", "center", "corner", "side", "left", "right", "above", "below"} <= position
    assert not position & {"the", "of", "to", "on"}
