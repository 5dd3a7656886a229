"""Settings and helpers the test modules share (pytest's importlib mode keeps conftest unimportable)."""

STEPS = 10
CFG = 5.0


class CallLog(list):
    """(name, sigma) of every diffusion-model call, in order, as recorded by tagged models."""

    def names(self) -> str:
        return "".join(name for name, _ in self)


def crossed(where=lambda **cell: True, **dimensions):
    """pytest params for every combination of ``dimensions`` (name -> values) that ``where`` accepts.

    The full product runs on the target host. A covering subset, chosen greedily so that every value of each
    dimension meets every value of every other at least once, runs everywhere; the rest carry the
    ``cross_product`` mark, which the version-floor run deselects."""
    import itertools

    import pytest

    names = list(dimensions)
    cells = [cell for cell in itertools.product(*dimensions.values()) if where(**dict(zip(names, cell)))]
    pairs_of = lambda cell: {((i, cell[i]), (j, cell[j])) for i, j in itertools.combinations(range(len(names)), 2)}
    uncovered = set().union(*map(pairs_of, cells))
    covering = set()
    while uncovered:
        best = max(cells, key=lambda cell: len(pairs_of(cell) & uncovered))  # first of the best, so deterministic
        covering.add(best)
        uncovered -= pairs_of(best)
    return [pytest.param(*cell, id="-".join(str(value) for value in cell),
                         marks=() if cell in covering else pytest.mark.cross_product)
            for cell in cells]
