"""Image input that never crashes a run: one loader, dataset sources, streaming."""

from audit.io.images import REASONS, LoadResult, decode_image, load_image
from audit.io.sources import ImageRecord, folder_source, manifest_source, open_source
from audit.io.stream import LoadedItem, iter_images

__all__ = [
    "REASONS",
    "ImageRecord",
    "LoadResult",
    "LoadedItem",
    "decode_image",
    "folder_source",
    "iter_images",
    "load_image",
    "manifest_source",
    "open_source",
]
