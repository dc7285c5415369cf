"""User-facing errors.

Every problem a user can fix (a bad file, an unknown preset, missing weights) is raised as an
ImpastoError whose message is one line that names the thing and the problem. Front-ends show that
line as it is: the CLI prints it and exits 2, the web app shows it in the page, the hot folder
writes it next to the failed file.
"""


class ImpastoError(Exception):
    """A problem the user can fix; str(error) is the whole message."""


class InputError(ImpastoError):
    """An input image (or output path) cannot be used."""


class PresetError(ImpastoError):
    """A preset or an override is invalid."""


class WeightsError(ImpastoError):
    """The VGG19 weights are missing or corrupt."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name when it has none): what a
    one-line report keeps of a library's longer text."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
