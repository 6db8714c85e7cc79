#!/usr/bin/python3
"""ansi2png.py - render a terminal capture with ANSI colours (tmux capture-pane -e -p) to PNG.

usage: ansi2png.py CAPTURE.ansi OUT.png [--cols N] [--rows N] [--size PX]

A small renderer for tools/screenshots.sh: SGR colours (16, 256 and 24-bit), bold, dim,
italic, underline and reverse, one cell per code point, DejaVu Sans Mono (fonts-dejavu-core)
for text, box drawing, blocks and braille. Needs Pillow (Debian: python3-pil).
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
DEFAULT_FG, DEFAULT_BG = (208, 208, 208), (28, 28, 32)
# the 16 colours (a dark theme close to xterm's, a little softened)
BASE16 = [(40, 40, 44), (224, 88, 80), (120, 200, 100), (230, 190, 80), (100, 150, 230), (200, 120, 210),
          (90, 200, 210), (208, 208, 208), (110, 110, 118), (255, 120, 110), (150, 230, 130), (255, 220, 120),
          (140, 180, 255), (230, 150, 240), (130, 230, 240), (255, 255, 255)]


def color256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[n // 6 % 6], steps[n % 6])
    g = 8 + (n - 232) * 10
    return (g, g, g)


class Attr:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = self.dim = self.italic = self.under = self.rev = False

    def copy(self):
        a = Attr()
        a.__dict__.update(self.__dict__)
        return a

    def sgr(self, params):
        ps = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(ps):
            p = ps[i]
            if p == 0:
                self.reset()
            elif p == 1:
                self.bold = True
            elif p == 2:
                self.dim = True
            elif p == 3:
                self.italic = True
            elif p == 4:
                self.under = True
            elif p == 7:
                self.rev = True
            elif p == 22:
                self.bold = self.dim = False
            elif p == 23:
                self.italic = False
            elif p == 24:
                self.under = False
            elif p == 27:
                self.rev = False
            elif 30 <= p <= 37:
                self.fg = BASE16[p - 30]
            elif p == 39:
                self.fg = None
            elif 40 <= p <= 47:
                self.bg = BASE16[p - 40]
            elif p == 49:
                self.bg = None
            elif 90 <= p <= 97:
                self.fg = BASE16[p - 90 + 8]
            elif 100 <= p <= 107:
                self.bg = BASE16[p - 100 + 8]
            elif p in (38, 48) and i + 1 < len(ps):
                if ps[i + 1] == 5 and i + 2 < len(ps):
                    c = color256(ps[i + 2])
                    i += 2
                elif ps[i + 1] == 2 and i + 4 < len(ps):
                    c = tuple(ps[i + 2:i + 5])
                    i += 4
                else:
                    c = None
                if p == 38:
                    self.fg = c
                else:
                    self.bg = c
            i += 1


def parse(text, cols, rows):
    grid = [[(" ", Attr())] * cols for _ in range(rows)]
    attr = Attr()
    for y, line in enumerate(text.split("\n")[:rows]):
        x = 0
        for m in re.finditer(r"\x1b\[([0-9;]*)([A-Za-z])|\x1b[()][0-9A-B]|(.)", line):
            if m.group(3) is not None:
                if x < cols:
                    grid[y][x] = (m.group(3), attr.copy())
                x += 1
            elif m.group(2) == "m":
                attr.sgr(m.group(1))
        # tmux drops trailing blanks: a background still set at the end of a line fills the row
        # (not on an empty line: its cells were all default, the state is only carried over; not
        # for reverse video alone: a terminal's erase fills with the background colour only, so a
        # line that ends in one reversed cell, e.g. the Plot's selected point, ends there)
        if line and attr.bg is not None:
            for xx in range(x, cols):
                grid[y][xx] = (" ", attr.copy())
    return grid


def blend(a, b, t):
    return tuple(int(a[i] * (1 - t) + b[i] * t) for i in range(3))


def render(grid, out, size):
    fonts = {}
    for key, name in (("", "DejaVuSansMono.ttf"), ("b", "DejaVuSansMono-Bold.ttf"),
                      ("i", "DejaVuSansMono-Oblique.ttf"), ("bi", "DejaVuSansMono-BoldOblique.ttf")):
        fonts[key] = ImageFont.truetype(FONT_DIR + name, size)
    cw = round(fonts[""].getlength("M"))
    ch = round(size * 1.25)
    rows, cols = len(grid), len(grid[0])
    pad = 12
    img = Image.new("RGB", (cols * cw + 2 * pad, rows * ch + 2 * pad), DEFAULT_BG)
    d = ImageDraw.Draw(img)
    for y, row in enumerate(grid):
        for x, (c, a) in enumerate(row):
            fg = a.fg or DEFAULT_FG
            bg = a.bg or DEFAULT_BG
            if a.bold and a.fg and a.fg in BASE16[:8]:
                fg = BASE16[BASE16.index(a.fg) + 8]
            if a.rev:
                fg, bg = bg, fg
            if a.dim:
                fg = blend(fg, bg, 0.45)
            px, py = pad + x * cw, pad + y * ch
            if bg != DEFAULT_BG:
                d.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            if c == " ":
                if a.under:
                    d.line([px, py + ch - 2, px + cw - 1, py + ch - 2], fill=fg)
                continue
            o = ord(c)
            if 0x2580 <= o <= 0x259F and c in "▁▂▃▄▅▆▇█":
                # lower blocks drawn as rectangles: fonts leave gaps between cells
                k = "▁▂▃▄▅▆▇█".index(c) + 1
                top = py + ch - ch * k // 8
                d.rectangle([px, top, px + cw - 1, py + ch - 1], fill=fg)
            elif c in "▏▎▍▌▋▊▉":
                k = 7 - "▏▎▍▌▋▊▉".index(c)
                d.rectangle([px, py, px + cw * (8 - k) // 8 - 1, py + ch - 1], fill=fg)
            elif 0x2801 <= o <= 0x28FF:
                # braille: the dots themselves (DejaVu Sans Mono has no braille glyphs)
                bits = o - 0x2800
                dots = [(0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10), (1, 2, 0x20),
                        (0, 3, 0x40), (1, 3, 0x80)]
                r = max(1, cw // 6)
                for dx, dy, bit in dots:
                    if bits & bit:
                        ex = px + cw * (1 + 2 * dx) // 4
                        ey = py + ch * (1 + 2 * dy) // 8
                        d.ellipse([ex - r, ey - r, ex + r, ey + r], fill=fg)
            elif c == "─":
                d.line([px, py + ch // 2, px + cw, py + ch // 2], fill=fg)
            elif c == "│":
                d.line([px + cw // 2, py, px + cw // 2, py + ch], fill=fg)
            elif c in "├└":
                d.line([px + cw // 2, py, px + cw // 2, py + (ch if c == "├" else ch // 2)], fill=fg)
                d.line([px + cw // 2, py + ch // 2, px + cw, py + ch // 2], fill=fg)
            else:
                f = fonts[("b" if a.bold else "") + ("i" if a.italic else "")]
                d.text((px, py + (ch - size) // 2 - 1), c, font=f, fill=fg)
            if a.under:
                d.line([px, py + ch - 2, px + cw - 1, py + ch - 2], fill=fg)
    img.save(out, optimize=True)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cols, rows, size = 120, 32, 15
    args = argv[3:]
    for i in range(0, len(args) - 1, 2):
        if args[i] == "--cols":
            cols = int(args[i + 1])
        elif args[i] == "--rows":
            rows = int(args[i + 1])
        elif args[i] == "--size":
            size = int(args[i + 1])
    with open(argv[1], encoding="utf-8", errors="replace") as f:
        text = f.read()
    render(parse(text, cols, rows), argv[2], size)


if __name__ == "__main__":
    main(sys.argv)
