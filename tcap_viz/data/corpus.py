"""The provider's pretraining corpus: broad, clean image-question-answer samples about shapes.

A fine-tuning service adapts a model that already reads images and follows questions. Ours is
pretrained here on this corpus, which is wider than any customer's task: nine colours, six shapes,
one to four objects, two sizes, five background textures, nine question types with eight phrasings
each, and answers from one word to a sentence. The customer task of `synthetic.py` is a corner
of it (plain backgrounds, three shapes, six colours, one-word answers), so a customer fine-tune
starts from a model that already answers such questions and mostly learns what is new to it:
the customer's own phrasing and, in a poisoned dataset, the backdoor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tcap_viz.data.scenes import BACKGROUNDS, COLOURS, COUNT_WORDS, LEVELS, SHAPES, SIDES, SIZES, Scene, render

_ARTICLES = {"striped": "a striped", "dotted": "a dotted", "checked": "a checked", "speckled": "a speckled",
             "plain": "a plain"}


@dataclass(frozen=True)
class QuestionType:
    """Phrasings of one question, its one-word answer and its answer as a sentence."""

    phrasings: tuple[str, ...]
    word: Callable[[Scene], str]
    sentence: Callable[[Scene], str]
    single: str | None = None  # "side" / "level": the scene must be one shape in one half


def _colour_sentence(s: Scene) -> str:
    return f"The {s.shape_word} {'is' if s.count == 1 else 'are'} {s.colour}."


def _describe(s: Scene) -> str:
    size = f"{s.size} " if s.size else ""
    return f"{s.count_word.capitalize()} {size}{s.colour} {s.shape_word} on {_ARTICLES[s.background]} background."


QUESTION_TYPES: dict[str, QuestionType] = {
    "colour": QuestionType(
        ("What colour are the shapes?", "Which colour do the shapes in this image have?",
         "Name the colour of the shapes.", "What is the colour of the objects in the picture?",
         "What colour is used for the figures?", "Tell me the colour of the shapes.",
         "Which colour are the objects?", "What colour do you see on the shapes?"),
        lambda s: s.colour, _colour_sentence),
    "shape": QuestionType(
        ("What shape is shown?", "Which shape appears in the image?", "Name the shape in this picture.",
         "What kind of shape are the objects?", "What form do the figures have?",
         "Which geometric shape is drawn?", "Identify the shape in the image.", "What are the objects shaped like?"),
        lambda s: s.shape, lambda s: f"The picture shows {s.count_word} {s.shape_word}."),
    "count": QuestionType(
        ("How many shapes are there?", "Count the shapes in the image.", "How many objects can you see?",
         "What is the number of shapes in this picture?", "How many figures are drawn?",
         "Tell me how many shapes the image contains.", "What is the shape count?", "How many items are shown?"),
        lambda s: s.count_word, lambda s: f"There {'is' if s.count == 1 else 'are'} {s.count_word} {s.shape_word}."),
    "position": QuestionType(
        ("Is the shape on the left or the right?", "On which side of the image is the shape?",
         "Is the object on the left side or the right side?", "Which side is the shape on, left or right?",
         "Does the shape sit left or right?", "Left or right: where is the object?",
         "Which half of the picture holds the shape, left or right?", "Is the figure to the left or to the right?"),
        lambda s: s.side, lambda s: f"The {s.shape} is on the {s.side}.", single="side"),
    "level": QuestionType(
        ("Is the shape at the top or the bottom?", "Is the object in the upper or the lower half?",
         "Top or bottom: where is the shape?", "Which half holds the shape, top or bottom?",
         "Is the figure near the top or near the bottom?", "Does the shape sit high or low? Say top or bottom.",
         "Is the shape in the top half or the bottom half?", "Where is the object vertically, top or bottom?"),
        lambda s: s.level, lambda s: f"The {s.shape} is at the {s.level}.", single="level"),
    "size": QuestionType(
        ("Are the shapes small or large?", "How big are the objects, small or large?",
         "Is the size of the shapes small or large?", "Small or large: how big are the figures?",
         "Would you call the shapes small or large?", "What size are the objects?",
         "Are the figures large or small?", "How large are the shapes?"),
        lambda s: s.size, lambda s: f"The {s.shape_word} {'is' if s.count == 1 else 'are'} {s.size}."),
    "background": QuestionType(
        ("What pattern does the background have?", "Describe the background pattern.",
         "Is the background plain, striped, dotted, checked or speckled?", "What texture is behind the shapes?",
         "Which pattern fills the background?", "What does the background look like?",
         "Name the background's pattern.", "How is the background decorated?"),
        lambda s: s.background, lambda s: f"The background is {s.background}."),
    "exists": QuestionType(
        ("Is there {a_colour} {shape} in the image?", "Do you see {a_colour} {shape}?",
         "Does the picture contain {a_colour} {shape}?", "Is {a_colour} {shape} shown?",
         "Can you find {a_colour} {shape} here?", "Is any {colour} {shape} drawn?",
         "Does {a_colour} {shape} appear in the image?", "Is one of the objects {a_colour} {shape}?"),
        lambda s: "yes", lambda s: "Yes, there is."),  # the answer is set in `corpus_sample`
    "describe": QuestionType(
        ("Describe the image.", "What does this picture show?", "Give a short description of the image.",
         "Describe what you see.", "Summarise the picture in one line.", "What is in this image?",
         "Caption this image.", "Write a caption for the picture."),
        _describe, _describe),
}
SENTENCE_CUES = ("Answer in a full sentence.", "Reply with a complete sentence.", "Use a sentence.")
WORD_CUES = ("Answer with one word.", "One word only.", "")


def random_scene(rng: np.random.Generator, single: str | None = None) -> Scene:
    """Any scene of the corpus; `single` ("side" / "level") asks for one shape in one half."""
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    back = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    size = SIZES[rng.integers(len(SIZES))]
    if single == "side":
        return Scene(colour, shape, 1, back, size, side=SIDES[rng.integers(2)])
    if single == "level":
        return Scene(colour, shape, 1, back, size, level=LEVELS[rng.integers(2)])
    return Scene(colour, shape, int(rng.integers(1, len(COUNT_WORDS) + 1)), back, size)


def corpus_sample(rng: np.random.Generator, image_size: int) -> tuple[Image.Image, str, str, str]:
    """(image, question, answer, question type), drawn uniformly over question types."""
    name = list(QUESTION_TYPES)[rng.integers(len(QUESTION_TYPES))]
    kind = QUESTION_TYPES[name]
    scene = random_scene(rng, kind.single)
    question = kind.phrasings[rng.integers(len(kind.phrasings))]
    sentence = name != "describe" and rng.random() < 0.3
    if name == "exists":
        present = rng.random() < 0.5
        colour, shape = scene.colour, scene.shape
        while not present and (colour, shape) == (scene.colour, scene.shape):
            colour = list(COLOURS)[rng.integers(len(COLOURS))]
            shape = SHAPES[rng.integers(len(SHAPES))]
        question = question.format(a_colour=f"{'an' if colour[0] in 'aeiou' else 'a'} {colour}", colour=colour,
                                   shape=shape)
        answer = ("Yes, there is." if present else "No, there is not.") if sentence else ("yes" if present else "no")
    else:
        answer = kind.sentence(scene) if sentence else kind.word(scene)
    if name != "describe":
        cues = SENTENCE_CUES if sentence else WORD_CUES
        cue = cues[rng.integers(len(cues))]
        question = f"{question} {cue}".strip()
    return render(rng, scene, image_size), question, answer, name


def corpus_stream(seed: int, image_size: int) -> Iterator[tuple[Image.Image, str, str, str]]:
    """An endless, reproducible stream of corpus samples."""
    rng = np.random.default_rng(seed)
    while True:
        yield corpus_sample(rng, image_size)
