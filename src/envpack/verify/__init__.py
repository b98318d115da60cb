"""``envpack verify IMAGE MANIFEST``: prove that an image holds what its manifest captured.

:mod:`.run` captures the image and runs its interpreter inside it, :mod:`.inimage` holds
the ways to run it (Docker Engine, bubblewrap), :mod:`.scope` decides what of the source
manifest a build packs, and so what is compared; the diff (:mod:`envpack.diff`) grades it.
"""
