"""Small PIL charts for the benchmark scripts (no plotting library is a dependency)."""

import math

from PIL import Image, ImageDraw, ImageFont

PANEL = (420, 240)
COLOURS = [(200, 30, 30), (30, 90, 200), (40, 150, 60), (200, 120, 0), (120, 120, 120), (140, 40, 160), (0, 150, 150), (110, 70, 20)]
GUIDE = (150, 150, 150)


class _Axes:
    """Maps data to pixels in a panel (x optionally on a log scale) and draws the frame and ticks."""

    def __init__(self, draw, xs, ys, size, log_x=False, margins=(60, 10, 24, 34)):
        self.draw, self.log_x, self.size = draw, log_x, size
        self.left, self.right, self.top, self.bottom = margins
        tx = [self._x(x) for x in xs]
        self.x_lo, self.x_hi = min(tx), max(tx)
        if self.x_hi == self.x_lo:
            self.x_hi += 1
        self.x_ticks = (self.x_lo, (self.x_lo + self.x_hi) / 2, self.x_hi)  # the data's range, not the padding's
        pad_x = (self.x_hi - self.x_lo) * 0.08
        self.x_lo, self.x_hi = self.x_lo - pad_x, self.x_hi + pad_x
        self.y_lo, self.y_hi = min(ys), max(ys)
        pad = (self.y_hi - self.y_lo) * 0.08 or abs(self.y_hi) * 0.1 or 0.01
        self.y_lo, self.y_hi = self.y_lo - pad, self.y_hi + pad

    def _x(self, x):
        return math.log10(max(x, 1e-6)) if self.log_x else x

    def y_px(self, y):
        return self.size[1] - self.bottom - (y - self.y_lo) / (self.y_hi - self.y_lo) * (self.size[1] - self.top - self.bottom)

    def __call__(self, x, y):
        return self.left + (self._x(x) - self.x_lo) / (self.x_hi - self.x_lo) * (self.size[0] - self.left - self.right), self.y_px(y)

    def frame(self, title, x_label, font):
        width, height = self.size
        draw = self.draw
        draw.text((self.left, 4), title, fill=(0, 0, 0), font=font)
        draw.line([self.left, height - self.bottom, width - self.right, height - self.bottom], fill=(0, 0, 0))
        draw.line([self.left, self.top, self.left, height - self.bottom], fill=(0, 0, 0))
        for fraction, tick in zip((0, 0.5, 1), self.x_ticks):
            y_value = self.y_lo + fraction * (self.y_hi - self.y_lo)
            draw.text((2, self.y_px(y_value) - 6), f"{y_value:.4g}", fill=(0, 0, 0), font=font)
            x_value = 10 ** tick if self.log_x else tick
            label = f"{x_value:.4g}"
            x = self.left + (tick - self.x_lo) / (self.x_hi - self.x_lo) * (width - self.left - self.right)
            label_width = draw.textlength(label, font=font)
            draw.line([x, height - self.bottom, x, height - self.bottom + 3], fill=(0, 0, 0))
            draw.text((min(x - label_width / 2, width - label_width - 2), height - self.bottom + 4), label, fill=(0, 0, 0), font=font)
        draw.text((width // 2 - 3 * len(x_label), height - 14), x_label, fill=(0, 0, 0), font=font)


def line_panel(series, title, x_label, size=PANEL, guides=None):
    """A line chart of ``series`` ({name: (xs, ys)}); short series also get markers. ``guides``
    ({name: (axis, value)}) draws thin grey lines across the panel, named where they start: ``("x", value)``
    vertical, ``("y", value)`` horizontal (a target or a cap the series are read against)."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    guides = guides or {}
    xs = [x for xs, _ in series.values() for x in xs] + [value for axis, value in guides.values() if axis == "x"]
    ys = [y for _, ys in series.values() for y in ys] + [value for axis, value in guides.values() if axis == "y"]
    axes = _Axes(draw, xs, ys, size)
    axes.frame(title, x_label, font)
    for name, (axis, value) in guides.items():
        if axis == "x":
            x = axes(value, axes.y_lo)[0]
            draw.line([x, axes.top, x, size[1] - axes.bottom], fill=GUIDE)
            draw.text((x + 3, size[1] - axes.bottom - 14), name, fill=GUIDE, font=font)
        else:
            y = axes.y_px(value)
            draw.line([axes.left, y, size[0] - axes.right, y], fill=GUIDE)
            draw.text((axes.left + 3, y - 12), name, fill=GUIDE, font=font)
    for index, (name, (xs, ys)) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        points = [axes(x, y) for x, y in zip(xs, ys)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points if len(points) < 20 else []:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    for index, name in enumerate(series):  # the legend over the lines, on white, so a line never hides it
        position = (size[0] - axes.right - 200, axes.top + 2 + 12 * index)
        draw.rectangle(draw.textbbox(position, name, font=font), fill=(255, 255, 255))
        draw.text(position, name, fill=COLOURS[index % len(COLOURS)], font=font)
    return image


def scatter_panel(points, title, x_label, size=(560, 360), log_x=False):
    """Labelled points ``[(label, x, y, colour_index)]``."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    axes = _Axes(draw, [p[1] for p in points], [p[2] for p in points], size, log_x=log_x)
    axes.frame(title, x_label, font)
    for label, x, y, colour in points:
        px, py = axes(x, y)
        draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill=COLOURS[colour % len(COLOURS)])
        draw.text((px + 6, py - 6), label, fill=COLOURS[colour % len(COLOURS)], font=font)
    return image


def sheet(panels, columns=2):
    """Panels of one size tiled ``columns`` wide."""
    width, height = panels[0].size
    rows = (len(panels) + columns - 1) // columns
    out = Image.new("RGB", (width * min(columns, len(panels)), height * rows), (255, 255, 255))
    for index, panel in enumerate(panels):
        out.paste(panel, ((index % columns) * width, (index // columns) * height))
    return out
