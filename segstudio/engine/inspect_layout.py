"""Where each tap of a network goes in the inspector's diagram, computed from the taps' own structure.

No picture is drawn per architecture: the layout reads only what every TapSpec declares (network order,
kind, resolution level, the tap a skip pairs with), so a U-Net comes out as a U, FCN's score streams meet,
ASPP and pyramid-pooling branches fan out and DeconvNet's pooling indices cross to the unpooling layers.

The rules, in grid units (one cell per node; the window scales cells to pixels):

- Columns follow network order: every tap except a skip gets the next column; a run of two or more
  context taps that a fusion tap then combines (ASPP, pyramid pooling) are parallel branches and share one
  column, fanned out vertically around their level.
- Rows are resolution levels: row 0 is full size, row n is 1/2**n. Encoder levels go down, decoder levels
  come back up, so encoder-decoder networks draw their U.
- A skip sits on the bridge between the encoder tap it comes from (the last encoder tap at its level
  before it) and the tap it pairs with, in the free cell at its level nearest that tap; when there is no
  free cell, a column is inserted before the pair.
- Edges: "flow" joins each tap to the next one in network order (a skip that follows its pair is a side
  input and is stepped over; a skip that precedes its pair, DeconvNet's unpooling, is on the way); a
  branch fan gets one edge from what feeds it to each branch and one from each branch to the fusion;
  "skip" edges run from the source encoder tap to the skip and from the skip to its pair.

Qt-free and torch-free: the specs only need `name`, `kind`, `level` and `pairs_with`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DiagramNode:
    name: str
    kind: str
    level: int
    column: int
    row: float  # the level, or a fanned-out position for parallel branches


@dataclass(frozen=True)
class DiagramEdge:
    source: str
    target: str
    kind: str  # "flow", "branch" or "skip"
    skip: str | None = None  # the skip tap a "skip" edge belongs to (clicking it shows that pair)


@dataclass
class DiagramLayout:
    nodes: dict[str, DiagramNode] = field(default_factory=dict)  # in network order
    edges: list[DiagramEdge] = field(default_factory=list)

    @property
    def columns(self) -> int:
        return 1 + max((n.column for n in self.nodes.values()), default=-1)

    @property
    def rows(self) -> float:
        """Height in cells (the lowest row plus one)."""
        return 1 + max((n.row for n in self.nodes.values()), default=-1)

    def skip_edges(self, skip: str) -> list[DiagramEdge]:
        return [e for e in self.edges if e.skip == skip]


def _levels(specs: Sequence) -> list[int]:
    """Each tap's level; a tap that declares none takes its predecessor's (0 at the start)."""
    levels, last = [], 0
    for spec in specs:
        last = spec.level if spec.level is not None else last
        levels.append(int(last))
    return levels


def branch_groups(specs: Sequence) -> list[tuple[int, int]]:
    """(first, end) index ranges of parallel branches: two or more context taps in a row, then a fusion."""
    groups, i = [], 0
    while i < len(specs):
        j = i
        while j < len(specs) and specs[j].kind == "context":
            j += 1
        if j - i >= 2 and j < len(specs) and specs[j].kind == "fusion":
            groups.append((i, j))
        i = max(j, i + 1)
    return groups


def skip_source(specs: Sequence, levels: Sequence[int], index: int) -> int | None:
    """The encoder tap a skip carries across: the last encoder tap before it at its level (else the last
    encoder tap before it at the nearest level)."""
    level = levels[index]
    encoders = [i for i in range(index) if specs[i].kind == "encoder"]
    if not encoders:
        return None
    same = [i for i in encoders if levels[i] == level]
    if same:
        return same[-1]
    return min(reversed(encoders), key=lambda i: abs(levels[i] - level))


def layout_taps(specs: Sequence) -> DiagramLayout:
    """The diagram of a network from its TapSpecs (in network order)."""
    specs = list(specs)
    levels = _levels(specs)
    names = [s.name for s in specs]
    branch_of = {}
    for first, end in branch_groups(specs):
        for i in range(first, end):
            branch_of[i] = (first, end)

    column: dict[int, int] = {}
    row: dict[int, float] = {}
    next_column = 0
    for i, spec in enumerate(specs):
        if spec.kind == "skip":
            continue
        if i in branch_of:
            first, end = branch_of[i]
            if i == first:
                top = max(0.0, levels[i] - (end - first - 1) / 2)
                for k in range(first, end):
                    column[k], row[k] = next_column, top + (k - first)
                next_column += 1
            continue
        column[i], row[i] = next_column, float(levels[i])
        next_column += 1

    for i, spec in enumerate(specs):
        if spec.kind == "skip":
            _place_skip(specs, levels, names, i, column, row)

    layout = DiagramLayout()
    for i, spec in enumerate(specs):
        layout.nodes[spec.name] = DiagramNode(spec.name, spec.kind, levels[i], column[i], row[i])
    layout.edges = _edges(specs, levels, names, branch_of)
    return layout


def _place_skip(specs, levels, names, i, column: dict, row: dict) -> None:
    """Put skip i in the free cell at its level nearest its pair, between its source and its pair."""
    level = levels[i]
    pair = names.index(specs[i].pairs_with) if specs[i].pairs_with in names else None
    source = skip_source(specs, levels, i)
    if pair is None or pair not in column:
        # Nothing to join: right after the tap before it, in a column of its own.
        anchor = max((column[k] for k in column if k < i), default=-1) + 1
        _insert_column(column, anchor)
        column[i], row[i] = anchor, float(level)
        return
    low = column[source] + 1 if source is not None and source in column else 0
    taken = {(c, row[k]) for k, c in column.items()}
    for c in range(column[pair] - 1, low - 1, -1):
        if (c, float(level)) not in taken and not _branch_column(column, row, c, level):
            column[i], row[i] = c, float(level)
            return
    _insert_column(column, column[pair])
    column[i], row[i] = column[pair] - 1, float(level)


def _branch_column(column: dict, row: dict, c: int, level: int) -> bool:
    """Whether column c holds a fan whose cells would overlap a node at `level`."""
    return any(column[k] == c and abs(row[k] - level) < 1 for k in column)


def _insert_column(column: dict, at: int) -> None:
    for k, c in column.items():
        if c >= at:
            column[k] = c + 1


def _edges(specs, levels, names, branch_of) -> list[DiagramEdge]:
    edges: list[DiagramEdge] = []
    index = {n: i for i, n in enumerate(names)}

    def side_input(i: int) -> bool:
        pair = index.get(specs[i].pairs_with)
        return specs[i].kind == "skip" and (pair is None or pair < i)

    previous: list[int] = []
    feeding_group: list[int] = []  # what feeds the branch fan being walked through
    for i in (k for k in range(len(specs)) if not side_input(k)):
        if i in branch_of:
            first, end = branch_of[i]
            if i == first:
                feeding_group = previous
            edges += [DiagramEdge(names[p], names[i], "branch") for p in feeding_group]
            previous = list(range(first, i + 1))
            continue
        edges += [DiagramEdge(names[p], names[i], "branch" if p in branch_of else "flow") for p in previous]
        previous = [i]

    for i, spec in enumerate(specs):
        if spec.kind != "skip":
            continue
        source = skip_source(specs, levels, i)
        if source is not None:
            edges.append(DiagramEdge(names[source], spec.name, "skip", spec.name))
        if spec.pairs_with in index:
            edges = [e for e in edges if not (e.source == spec.name and e.target == spec.pairs_with)]
            edges.append(DiagramEdge(spec.name, spec.pairs_with, "skip", spec.name))
    return edges
