"""The demo's pictures (matplotlib, Agg backend: no display needed).

- `timeline_png`: one lane per kind of event (REST, SIP, callbacks, TwiML, media) against seconds since
  start; a dot per event, coloured by call leg, labelled without overlaps; bars for what lasts (the legs'
  talk time, the greeting, the bridge, hold music).
- `waveforms_png`: a two-channel recording, one waveform per channel, each with its spectrum and the
  frequency that dominates it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.transforms import Bbox

LANES = ("REST", "SIP", "callback", "TwiML", "media")
LANE_TITLES = {
    "REST": "REST\n(twilio client)",
    "SIP": "SIP\n(switch ↔ phones)",
    "callback": "status callbacks\n(at the app)",
    "TwiML": "TwiML\n(fetched from the app)",
    "media": "media\n(audio, digits)",
}
COLOURS = {"A": "#1f77b4", "B": "#d62728", "": "#555555"}  # caller leg, agent leg, neither
LEG_NAMES = {"A": "caller leg (phone A)", "B": "agent leg (phone B)"}


@dataclass(frozen=True)
class Mark:
    """One event: `t` seconds since start, in `lane`, on leg "A", "B" or neither (""), labelled `label`."""

    t: float
    lane: str
    label: str
    leg: str = ""


@dataclass(frozen=True)
class Span:
    """Something that lasts, drawn as a bar in its lane."""

    start: float
    end: float
    lane: str
    label: str
    leg: str = ""


def _pyplot() -> ModuleType:
    """matplotlib.pyplot on the Agg backend, imported on first use (it is slow, and logs while it loads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _overlaps(box: Bbox, placed: list[Bbox], pad: float = 2.0) -> bool:
    return any(box.x0 - pad < other.x1 and other.x0 - pad < box.x1 and box.y0 - pad < other.y1
               and other.y0 - pad < box.y1 for other in placed)


def _label_marks(ax: Axes, marks: Sequence[Mark], y: float, placed: list[Bbox]) -> None:
    """Write each cluster of nearby marks' labels once, at the first level above/below the lane that is free.

    The y axis runs downwards (lane 0 at the top): a negative offset is above the lane.
    """
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    x0, x1 = ax.get_xlim()
    gap = (x1 - x0) * 0.012
    clusters: list[list[Mark]] = []
    for mark in sorted(marks, key=lambda m: m.t):
        if clusters and mark.t - clusters[-1][-1].t < gap:
            clusters[-1].append(mark)
        else:
            clusters.append([mark])
    levels = [-0.13, 0.13, -0.27, 0.27, -0.41, 0.41]
    for n, cluster in enumerate(clusters):
        lines = list(dict.fromkeys(m.label for m in cluster))
        if len(lines) > 4:
            lines = [*lines[:3], f"(+{len(lines) - 3} more)"]
        colour = COLOURS[cluster[0].leg] if len({m.leg for m in cluster}) == 1 else COLOURS[""]
        x = cluster[0].t
        order = levels if n % 2 == 0 else [levels[1], levels[0], *levels[2:]]
        text = None
        chosen = order[0]
        for dy in order:
            if text is not None:
                text.remove()
            chosen = dy
            text = ax.text(x, y + dy, "\n".join(lines), fontsize=7.5, color=colour, ha="left",
                           va="bottom" if dy < 0 else "top", clip_on=False)
            if not _overlaps(text.get_window_extent(renderer), placed):
                break
        assert text is not None
        placed.append(text.get_window_extent(renderer))
        ax.plot([x, x], [y, y + chosen], color=colour, lw=0.6, alpha=0.5, zorder=1)


def timeline_png(path: Path, marks: Sequence[Mark], spans: Sequence[Span], title: str) -> Path:
    """Draw the timeline picture to `path` (PNG)."""
    plt = _pyplot()
    end = max([m.t for m in marks] + [s.end for s in spans] + [1.0])
    fig, ax = plt.subplots(figsize=(18, 9.5), dpi=100)
    ax.set_xlim(-0.02 * end, end * 1.06)
    ax.set_ylim(len(LANES) - 0.5, -0.5)
    ax.set_yticks(range(len(LANES)), [LANE_TITLES[lane] for lane in LANES], fontsize=9)
    ax.set_xlabel("seconds since the demo started")
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    for i in range(len(LANES)):
        ax.axhline(i, color="#cccccc", lw=0.8, zorder=0)
        if i % 2:
            ax.axhspan(i - 0.5, i + 0.5, color="#f6f6f6", zorder=-1)
    for span in spans:
        y = LANES.index(span.lane) + (0.045 if span.leg == "B" else -0.045 if span.leg == "A" else 0.0)
        colour = COLOURS[span.leg]
        ax.barh(y, span.end - span.start, left=span.start, height=0.08, color=colour, alpha=0.22,
                edgecolor=colour, lw=0.8, zorder=2)
        ax.text(span.start + (span.end - span.start) / 2, y, span.label, fontsize=7.5, ha="center",
                va="center", color="#222222", zorder=4)
    fig.canvas.draw()
    placed: list[Bbox] = [t.get_window_extent() for t in ax.texts]  # the bars' own labels
    for i, lane in enumerate(LANES):
        in_lane = [m for m in marks if m.lane == lane]
        for leg in ("", "A", "B"):
            dots = [m.t for m in in_lane if m.leg == leg]
            ax.scatter(dots, [i] * len(dots), s=24, color=COLOURS[leg], zorder=5, edgecolor="white", lw=0.5)
        _label_marks(ax, in_lane, i, placed)
    handles = [plt.Line2D([], [], marker="o", ls="", color=COLOURS[leg], label=LEG_NAMES[leg]) for leg in "AB"]
    handles.append(plt.Line2D([], [], marker="o", ls="", color=COLOURS[""], label="not tied to one leg"))
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _spectrum(samples: npt.NDArray[np.float64], rate: int) -> tuple[npt.NDArray[np.float64],
                                                                      npt.NDArray[np.float64]]:
    window = samples - samples.mean()
    power = np.abs(np.fft.rfft(window * np.hanning(window.size))) ** 2
    freqs = np.fft.rfftfreq(window.size, 1.0 / rate).astype(np.float64)
    return freqs, (power / (power.max() or 1.0)).astype(np.float64)


def waveforms_png(path: Path, samples: npt.NDArray[np.int16], rate: int, titles: Sequence[str],
                  dominant: Sequence[float], title: str, tones: Sequence[tuple[float, str]] = ()) -> Path:
    """Draw each channel of `samples` (shape (n, channels)) with a 20 ms close-up and its spectrum, to `path`.

    `tones` are frequencies to mark on every spectrum (e.g. each phone's tone), with their names.
    """
    plt = _pyplot()
    channels = samples.shape[1]
    fig, axes = plt.subplots(channels, 2, figsize=(14, 2.7 * channels + 1), dpi=100, squeeze=False,
                             gridspec_kw={"width_ratios": [3.2, 1]})
    t = np.arange(samples.shape[0]) / rate
    colours = [COLOURS["A"], COLOURS["B"]]
    for ch in range(channels):
        data = samples[:, ch].astype(np.float64) / 32768.0
        wave_ax, spec_ax = axes[ch]
        colour = colours[ch % 2]
        wave_ax.plot(t, data, color=colour, lw=0.4)
        wave_ax.set_xlim(0, max(float(t[-1]), 0.1) if len(t) else 1.0)
        wave_ax.set_ylim(-1, 1)
        wave_ax.set_ylabel("amplitude")
        wave_ax.set_title(titles[ch], fontsize=10, loc="left")
        wave_ax.grid(color="#eeeeee")
        if len(data) > rate // 10:  # a close-up of 20 ms from the middle, where single cycles show
            mid, width = len(data) // 2, rate // 50
            zoom = wave_ax.inset_axes((0.78, 0.06, 0.21, 0.4))
            zoom.plot(t[mid:mid + width] * 1000, data[mid:mid + width], color=colour, lw=0.9)
            zoom.set_ylim(-1, 1)
            zoom.set_yticks([])
            zoom.set_xticks([round(t[mid] * 1000), round(t[mid + width - 1] * 1000)])
            zoom.tick_params(labelsize=7)
            zoom.set_title("20 ms close-up (ms)", fontsize=7, pad=2)
        freqs, power = _spectrum(data, rate) if len(data) > 1 else (np.zeros(1), np.zeros(1))
        spec_ax.plot(freqs, 10 * np.log10(np.maximum(power, 1e-10)), color=colour, lw=0.8)
        spec_ax.set_xlim(0, 2000)
        spec_ax.set_ylim(-100, 12)
        spec_ax.set_ylabel("dB")
        spec_ax.set_title(f"spectrum: {dominant[ch]:.0f} Hz dominates", fontsize=10, loc="left")
        for hz, name in tones:
            spec_ax.axvline(hz, color="#888888", ls=":", lw=0.8)
            spec_ax.text(hz + 20, 6, name, fontsize=7.5, color="#555555", va="center")
        spec_ax.grid(color="#eeeeee")
    axes[-1][0].set_xlabel("seconds into the recording")
    axes[-1][1].set_xlabel("Hz")
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
