"""One image's or slide's review queue: where it is saved, which regions a person painted in, and showing a
region on a canvas. Shared by the main window (ordinary images) and the slide windows.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPointF

from segstudio.core.review import Box, Region, ReviewQueue

# A region fills the view with this much room around it, so its border and a little context show.
MARGIN = 1.25


def show_region(canvas, region: Region) -> None:
    """Zoom and centre ``canvas`` on the region (image or level-0 pixels)."""
    view = canvas.viewport()
    canvas.set_zoom(min(view.width() / (region.w * MARGIN), view.height() / (region.h * MARGIN)))
    canvas.centerOn(QPointF(region.x0 + region.w / 2, region.y0 + region.h / 2))


class ReviewSession:
    """A queue (None until a prediction ranks the regions) saved at ``path`` after every change.

    ``painted(box)`` says whether a person painted any pixel in a box: such regions count as corrected.
    """

    def __init__(self, path: Path, painted: Callable[[Box], bool]) -> None:
        self.path, self.painted = path, painted
        self.queue: ReviewQueue | None = ReviewQueue.load(path)
        self.error: str | None = None

    def adopt(self, regions: list[Region], mean: float | None) -> None:
        """A prediction's ranking: new scores for its regions, marks kept by place."""
        if self.queue is None:
            self.queue = ReviewQueue(regions, mean)
        else:
            self.queue.update(regions, mean)
        self.recheck(None, save=False)
        self.save()

    def next(self) -> Region | None:
        if self.queue is None:
            return None
        if self.queue.current is not None:
            self.recheck(self.queue.current.box, save=False)
        region = self.queue.next()
        self.save()
        return region

    def go_to(self, key: str) -> Region | None:
        """Show a region picked from the list; the one shown before counts as looked at, as with Next."""
        if self.queue is None:
            return None
        region = next((r for r in self.queue.regions if r.key == key), None)
        if region is not None:
            if self.queue.current is not None and self.queue.current is not region:
                self.queue.current.checked = True
            self.queue.current = region
            self.save()
        return region

    def recheck(self, box: Box | None, save: bool = True) -> bool:
        """Mark the regions in ``box`` (None: all) that hold hand-painted pixels; True when any is new."""
        if self.queue is None:
            return False
        regions = self.queue.regions if box is None else self.queue.overlapping(box)
        newly = self.queue.mark_corrected([r.key for r in regions if not r.corrected and self.painted(r.box)])
        if newly and save:
            self.save()
        return bool(newly)

    def save(self) -> None:
        if self.queue is None:
            return
        try:
            self.queue.save(self.path)
            self.error = None
        except OSError as err:
            self.error = f"The review marks could not be saved to {self.path} ({err.strerror or err})"
