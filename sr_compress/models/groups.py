"""Coupled channel groups: how a model family declares which channels must be cut together (slimming).

A :class:`ChannelGroup` is one set of feature channels that several tensors index in the same order: the
convs that *produce* them (output channels), the convs that *consume* them (input channels) and per-channel
parameters such as PReLU slopes. Cutting the group keeps one index set in every member. A PixelShuffle(r)
maps output channel ``c·r² + k`` (k < r²) of the conv before it to feature channel ``c``, so that conv is a
member with ``expand = r²``: each kept feature channel keeps r² consecutive conv outputs.

Each family declares its groups next to its definition (``SRModel.channel_groups``) with the helpers below,
and says how to rebuild itself with new widths (``SRModel.with_widths``); :mod:`sr_compress.compress.slim`
does the scoring and the surgery. See docs/slim.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Member:
    """One tensor axis that indexes a group's channels: ``<key>.weight`` along ``dim`` (and ``<key>.bias``
    along 0 when ``bias``); ``expand`` tensor channels per group channel; ``score``: counts for importance."""

    key: str
    dim: int
    expand: int = 1
    bias: bool = False
    score: bool = False


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are cut together. ``name`` is the key of the width in ``with_widths``."""

    name: str
    width: int
    members: tuple[Member, ...]

    @property
    def producers(self) -> list[Member]:
        return [m for m in self.members if m.score]


def produced_by(model: nn.Module, key: str, expand: int = 1) -> Member:
    """The output channels of conv (or transposed conv) ``key``: its weight rows, its bias; scored."""
    mod = model.get_submodule(key)
    dim = 1 if isinstance(mod, nn.ConvTranspose2d) else 0
    return Member(key, dim, expand, bias=mod.bias is not None, score=True)


def consumed_by(model: nn.Module, key: str) -> Member:
    """The input channels of conv (or transposed conv) ``key``."""
    mod = model.get_submodule(key)
    return Member(key, 0 if isinstance(mod, nn.ConvTranspose2d) else 1)


def per_channel(model: nn.Module, key: str, expand: int = 1) -> list[Member]:
    """A per-channel parameter (PReLU slopes with one slope per channel); nothing for activations without."""
    mod = model.get_submodule(key)
    if isinstance(mod, nn.PReLU) and mod.num_parameters > 1:
        return [Member(key, 0, expand)]
    return []


def group(name: str, width: int, *members: Member | list[Member]) -> ChannelGroup:
    flat: list[Member] = []
    for m in members:
        flat.extend(m if isinstance(m, list) else [m])
    return ChannelGroup(name, int(width), tuple(flat))
