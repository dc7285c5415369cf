"""Masks beside a photo, named after it: the one naming rule of the doors that find a photo's
masks by themselves (the hot folder, `impasto batch --masks beside`).

    photo.jpg        the photo
    photo.mask.png   its mask for the first style (or the only one)
    photo.mask1.png  the same, numbered; photo.mask2.png for the second style, and so on

The mask's own extension is any image format; "mask" may be in any case. A file named like a
mask is never taken as a photo.
"""

from __future__ import annotations

import re
from pathlib import PurePath

_MASK = re.compile(r"^(?P<stem>.+)\.mask(?P<n>[1-9][0-9]{0,2})?\.[^.]+$", re.IGNORECASE)


def mask_of(name: str) -> tuple[str, int] | None:
    """(the photo's stem, the style's 0-based index) for a mask's file name, else None."""
    match = _MASK.match(name)
    if match is None:
        return None
    return match["stem"], int(match["n"] or 1) - 1


def photo_stem(name: str) -> str:
    """The stem a photo's masks are named after: photo.jpg -> photo."""
    return PurePath(name).stem


def masks_by_style(names: list[str], styles: int) -> list[str | None]:
    """Mask file names in the order of the styles (None: the whole picture), from the masks
    found beside one photo. InputError when two name the same style, or one names a style
    beyond `styles`: one line a user can act on."""
    from impasto.errors import InputError

    by_index: dict[int, str] = {}
    for name in sorted(names):
        _, index = mask_of(name)
        if index in by_index:
            raise InputError(
                f"{by_index[index]!r} and {name!r} are both masks for style {index + 1}: keep one"
            )
        if index >= styles:
            raise InputError(
                f"mask {name!r} is for style {index + 1}, but there "
                f"{'is 1 style' if styles == 1 else f'are {styles} styles'}"
            )
        by_index[index] = name
    return [by_index.get(i) for i in range(max(by_index, default=-1) + 1)]
