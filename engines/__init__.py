"""Everything that turns frames into stylized frames: models -> export -> runtimes.

- ``engines.adain``: the AdaIN operation (functional form + thin module).
- ``engines.models``: the networks (``adain`` VGG family, ``microast``), each splitting the style
  path (``style_stats``, run once per style) from the per-frame path (``stylize``).
- ``engines.weights``: the registry of named models, where their files come from and how they load.
- ``engines.styles``: the style bank (encode once, cache in memory and on disk, mix styles).
- ``engines.runtimes``: backends behind one :class:`~engines.runtimes.base.Engine` protocol.
- ``engines.stylizer``: uint8 BGR frames in, uint8 BGR frames out, on the engine's device.
"""
