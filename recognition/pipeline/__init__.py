"""RollCall's face pipeline: decode -> detect -> align -> embed -> match. Pure Python, no Django.

Stages are small classes (``MtcnnDetector``, ``DlibChipAligner``, an ``Embedder`` from the
registry, ``GalleryIndex``) joined by ``FacePipeline`` in ``pipeline.py``.
"""
