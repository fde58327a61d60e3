#!/usr/bin/env python3
"""Regenerate the example storyboard's reference images (tiny PNGs, standard library only).

Each is a 96x96 picture: a sky-to-ground gradient with a coloured disc standing in for a
character, so the files are real, valid PNGs of a few KB that any provider would accept.
Run from anywhere: python3 examples/storyboard/make-refs.py
"""
import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "refs")
SIZE = 96

# name -> (sky colour, ground colour, disc colour, disc centre x)
PICTURES = {
    "beach.png": ((250, 180, 120), (230, 210, 160), (90, 60, 40), 40),
    "horse.png": ((140, 190, 240), (90, 150, 70), (120, 80, 50), 48),
    "rider.png": ((160, 160, 200), (110, 110, 90), (200, 60, 60), 52),
    "foal.png": ((200, 220, 250), (120, 170, 90), (210, 170, 120), 44),
}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(sky, ground, disc, cx):
    rows = []
    cy, r2 = SIZE * 0.55, (SIZE * 0.22) ** 2
    for y in range(SIZE):
        t = y / (SIZE - 1)
        base = ground if y > SIZE * 0.7 else tuple(int(a + (b - a) * t) for a, b in zip(sky, ground))
        row = bytearray([0])  # filter: none
        for x in range(SIZE):
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= r2
            # A little deterministic texture so the image is not trivially compressible.
            noise = ((x * 7 + y * 13) % 11) - 5
            colour = disc if inside else base
            row += bytes(max(0, min(255, c + noise)) for c in colour)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


os.makedirs(HERE, exist_ok=True)
for name, spec in PICTURES.items():
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(png(*spec))
    print(name, os.path.getsize(os.path.join(HERE, name)), "bytes")
