"""Settings and helpers the test modules share (pytest's importlib mode keeps conftest unimportable)."""

STEPS = 10
CFG = 5.0


class CallLog(list):
    """(name, sigma) of every diffusion-model call, in order, as recorded by tagged models."""

    def names(self) -> str:
        return "".join(name for name, _ in self)
