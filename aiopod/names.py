"""Names for containers: podman-style random names and buildah's working-container names."""

from __future__ import annotations

import secrets
from collections.abc import Container

__all__ = ("random_container_name", "working_container_name")

_ADJECTIVES = (
    "admiring agitated amazing angry awesome beautiful blissful bold brave busy charming "
    "clever compassionate competent condescending confident cool cranky crazy dazzling "
    "determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "exciting fervent festive flamboyant focused friendly frosty funny gallant gifted "
    "goofy gracious great happy hardcore heuristic hopeful hungry infallible inspiring "
    "intelligent interesting jolly jovial keen kind laughing loving lucid magical modest "
    "musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful "
    "pedantic pensive practical priceless quirky quizzical relaxed reverent romantic sad "
    "serene sharp silly sleepy stoic strange stupefied suspicious sweet tender thirsty "
    "trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial "
    "youthful zealous zen"
).split()
_SURNAMES = (
    "albattani allen archimedes ardinghelli babbage banach bardeen bartik bassi bell "
    "bhabha bohr booth brahmagupta brown carson cerf chandrasekhar chatterjee curie "
    "darwin davinci dijkstra driscoll easley einstein elion engelbart euclid euler "
    "fermat fermi feynman franklin galileo gauss goldberg goldstine goodall hamilton "
    "hawking heisenberg hermann hodgkin hopper hypatia jackson jang jennings johnson "
    "kalam keller kepler khorana kilby knuth kowalevski lalande lamarr leakey lovelace "
    "lumiere mayer mccarthy mcclintock meitner mendel merkle minsky mirzakhani morse "
    "napier nash newton nobel noether pare pascal pasteur payne perlman pike poincare "
    "ptolemy raman ramanujan ride ritchie robinson roentgen rosalind saha sammet shannon "
    "shaw shockley sinoussi snyder spence stonebraker sutherland swanson tesla thompson "
    "torvalds turing varahamihira villani volhard wescoff wiles williams wilson wing "
    "wozniak wright yalow yonath"
).split()


def random_container_name(taken: Container[str]) -> str:
    """A free ``adjective_surname`` name, as podman gives containers made without --name."""
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
        if name not in taken:
            return name


def working_container_name(image_name: str | None, taken: Container[str]) -> str:
    """buildah's name for a working container of *image_name*: ``bb-working-container``,
    then ``-1``, ``-2`` … when taken; ``working-container`` for an unnamed image."""
    base = "working-container"
    if image_name:
        repo = image_name.split("@", 1)[0]
        last = repo.rsplit("/", 1)[-1]
        last = last.split(":", 1)[0]
        base = f"{last}-working-container"
    name, counter = base, 0
    while name in taken:
        counter += 1
        name = f"{base}-{counter}"
    return name
