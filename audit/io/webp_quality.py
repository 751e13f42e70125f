"""The quality a lossy WebP file was written at, read from its VP8 frame header (docs/detect.md, "Recompressed
inputs").

A lossy WebP stores its image as a VP8 key frame whose header carries the quantiser indices (0 finest,
127 coarsest): one base index, and with segmentation up to four per-segment indices (RFC 6386, sections 9.3
and 9.6). libwebp, the encoder behind Pillow, cwebp and the browsers, derives them from the ``quality``
(0-100) it was given: ``c = QualityToCompression(quality / 100)`` (``2q/3`` below 0.75, ``2q - 1`` above, then a
cube root) and ``index = 127 (1 - c)``, each segment's ``c`` raised to a power set by its spatial noise
shaping (libwebp ``src/enc/quant_enc.c``, ``VP8SetSegmentParams``). The estimate here is the quality whose
index is nearest the mean index of the frame's segments (the base index when it has none): for a file
without segments, the highest of the qualities that share its index (50 and 51 both give 38); with
segments, within about 2 points at quality 80 and up and within 10 below (tests/test_io_images.py). Other
encoders map quality to quantisers their own way: for them the figure is libwebp's equivalent quality. A
lossless WebP (VP8L) has no quality: None, as for anything that is not a readable lossy WebP.

The header is boolean-entropy coded, so a small decoder reads it (RFC 6386, section 7); only the frame
header's first fields are decoded, never the image.
"""

from __future__ import annotations

import struct
from functools import cache

import numpy as np

MAX_INDEX = 127  # the VP8 quantiser index range is 0..127 (RFC 6386, section 9.6)


class _BoolDecoder:
    """RFC 6386's boolean entropy decoder (section 7.3), for the frame header's flags and literals."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 2
        self.value = (data[0] << 8 | data[1]) if len(data) >= 2 else 0
        self.range, self.bit_count = 255, 0

    def bit(self, probability: int = 128) -> int:
        split = 1 + (((self.range - 1) * probability) >> 8)
        big_split = split << 8
        if self.value >= big_split:
            out, self.range, self.value = 1, self.range - split, self.value - big_split
        else:
            out, self.range = 0, split
        while self.range < 128:
            self.value, self.range, self.bit_count = self.value << 1, self.range << 1, self.bit_count + 1
            if self.bit_count == 8:
                self.bit_count = 0
                if self.pos < len(self.data):
                    self.value |= self.data[self.pos]
                self.pos += 1
        return out

    def literal(self, bits: int) -> int:
        value = 0
        for _ in range(bits):
            value = value << 1 | self.bit()
        return value

    def optional_signed(self, bits: int) -> int:
        """A flag, then when set a magnitude and a sign (RFC 6386's ``L(n)`` with sign); 0 when unset."""
        if not self.bit():
            return 0
        magnitude = self.literal(bits)
        return -magnitude if self.bit() else magnitude


def _vp8_frame(data: bytes, depth: int = 0) -> bytes | None:
    """The payload of a WebP's first lossy frame (its ``VP8 `` chunk, top level or in the first animation
    frame), or None for a lossless frame, another format or a file cut short."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP" or depth > 1:
        return None
    pos = 12
    while pos + 8 <= len(data):
        fourcc, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if fourcc == b"VP8 ":
            return body
        if fourcc == b"VP8L":
            return None
        if fourcc == b"ANMF":  # 16 bytes of frame geometry, then the frame's own chunks
            return _vp8_frame(b"RIFF\0\0\0\0WEBP" + body[16:], depth + 1)
        pos += 8 + size + (size & 1)
    return None


def quantiser_indices(data: bytes) -> list[int] | None:
    """The quantiser indices of a lossy WebP's first frame: its segments' (absolute, or the base index plus
    each segment's delta) when it has segments, else the base index alone; None when ``data`` is not a
    lossy WebP key frame."""
    frame = _vp8_frame(data)
    if frame is None or len(frame) < 11 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None  # not a key frame (bit 0 of the frame tag), or no start code
    header = _BoolDecoder(frame[10:])
    header.literal(2)  # colour space, clamping type
    segments: tuple[int, list[int]] | None = None
    if header.bit():  # segmentation enabled
        update_map = header.bit()
        if header.bit():  # segment feature data follow
            absolute = header.bit()
            quantisers = [header.optional_signed(7) for _ in range(4)]
            for _ in range(4):
                header.optional_signed(6)  # loop filter levels
            segments = (absolute, quantisers)
        if update_map:
            for _ in range(3):
                if header.bit():
                    header.literal(8)  # segment map probabilities
    header.literal(1 + 6 + 3)  # filter type, loop filter level, sharpness
    if header.bit() and header.bit():  # loop filter deltas enabled and updated
        for _ in range(8):
            header.optional_signed(6)
    header.literal(2)  # log2 of the number of DCT partitions
    base = header.literal(7)
    if segments is None:
        return [base]
    absolute, quantisers = segments
    return [int(np.clip(q if absolute else base + q, 0, MAX_INDEX)) for q in quantisers]


@cache
def _libwebp_indices() -> np.ndarray:
    """libwebp's quantiser index for each quality 0..100, without spatial noise shaping (computed once)."""
    q = np.arange(101) / 100.0
    linear = np.where(q < 0.75, q * (2.0 / 3.0), 2.0 * q - 1.0)
    return (MAX_INDEX * (1.0 - np.cbrt(linear))).astype(np.int64)


def webp_quality(data: bytes) -> int | None:
    """The libwebp quality (0-100) nearest a lossy WebP's mean quantiser index (see the module docstring); None
    for a lossless WebP and for anything else."""
    indices = quantiser_indices(data)
    if indices is None:
        return None
    mean = float(np.mean(indices))
    table = _libwebp_indices()
    distance = np.abs(table - mean)
    return int(np.flatnonzero(distance == distance.min()).max())  # ties (flat stretches): the highest quality
