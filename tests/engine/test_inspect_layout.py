"""The inspector's diagram layout, computed from each network's declared taps: shape, arcs, no overlaps."""
import itertools

import pytest

from segstudio.engine.inspect_layout import branch_groups, layout_taps
from segstudio.models.registry import build_model
from segstudio.models.taps import TapSpec, list_taps
from tests.models.conftest import TINY_CONFIGS


def specs_of(arch):
    return list_taps(build_model(arch, in_channels=1, num_classes=3, **TINY_CONFIGS[arch]))


@pytest.mark.parametrize("arch", list(TINY_CONFIGS))
def test_every_tap_is_a_node_and_no_two_nodes_overlap(arch):
    specs = specs_of(arch)
    layout = layout_taps(specs)
    assert list(layout.nodes) == [s.name for s in specs]
    for a, b in itertools.combinations(layout.nodes.values(), 2):
        assert abs(a.column - b.column) >= 1 or abs(a.row - b.row) >= 1, (a, b)


@pytest.mark.parametrize("arch", list(TINY_CONFIGS))
def test_every_edge_joins_existing_nodes_and_every_skip_pair_is_an_arc(arch):
    specs = specs_of(arch)
    layout = layout_taps(specs)
    for edge in layout.edges:
        assert edge.source in layout.nodes and edge.target in layout.nodes and edge.source != edge.target
    for spec in (s for s in specs if s.pairs_with):
        arcs = layout.skip_edges(spec.name)
        assert any(e.source == spec.name and e.target == spec.pairs_with for e in arcs)
        # the arc starts at an encoder tap at the skip's level
        start = [e.source for e in arcs if e.target == spec.name]
        assert start and all(layout.nodes[s].kind == "encoder" for s in start)
        assert all(layout.nodes[s].level == spec.level for s in start)


@pytest.mark.parametrize("arch", list(TINY_CONFIGS))
def test_every_tap_is_reached_by_the_flow_from_the_first(arch):
    layout = layout_taps(specs_of(arch))
    reached, frontier = set(), [next(iter(layout.nodes))]
    while frontier:
        name = frontier.pop()
        reached.add(name)
        frontier += [e.target for e in layout.edges if e.source == name and e.target not in reached]
    assert reached == set(layout.nodes)


def test_unet_draws_a_u_encoder_down_then_decoder_up_with_skips_across():
    specs = specs_of("unet")
    layout = layout_taps(specs)
    encoder = [layout.nodes[s.name] for s in specs if s.kind == "encoder"]
    assert [n.row for n in encoder] == sorted(n.row for n in encoder) and encoder[0].row < encoder[-1].row
    assert [n.column for n in encoder] == sorted(n.column for n in encoder)
    bottom = layout.nodes["bottleneck"]
    assert bottom.row == max(n.row for n in layout.nodes.values())
    decoder = [layout.nodes[s.name] for s in specs if s.kind == "decoder"]
    assert all(n.column > bottom.column for n in decoder)
    rows = [n.row for n in decoder]
    assert rows == sorted(rows, reverse=True) and rows[0] > rows[-1]
    for spec in (s for s in specs if s.kind == "skip"):  # each skip sits between its encoder and its decoder
        skip, pair = layout.nodes[spec.name], layout.nodes[spec.pairs_with]
        source = layout.nodes[f"enc{spec.name[4]}"]
        assert source.column < skip.column < pair.column and skip.row == source.row == pair.row


@pytest.mark.parametrize("arch, branches", [("pspnet", 4), ("deeplabv3plus", 5)])
def test_context_branches_fan_out_in_one_column_into_their_fusion(arch, branches):
    specs = specs_of(arch)
    layout = layout_taps(specs)
    (first, end), = branch_groups(specs)
    fan = [layout.nodes[s.name] for s in specs[first:end]]
    assert len(fan) == branches and len({n.column for n in fan}) == 1 and len({n.row for n in fan}) == branches
    fusion = specs[end].name
    assert all(any(e.source == n.name and e.target == fusion for e in layout.edges) for n in fan)
    feed = specs[first - 1].name
    assert all(any(e.source == feed and e.target == n.name for e in layout.edges) for n in fan)


def test_fcn_context_layers_in_a_row_are_a_chain_not_branches():
    assert branch_groups(specs_of("fcn8s")) == []


def test_fcn8s_score_streams_from_pool4_and_pool3_meet_the_upsampled_scores():
    layout = layout_taps(specs_of("fcn8s"))
    for source, skip, pair in (("pool4", "score_pool4", "upscore2 (score_32s x2)"),
                               ("pool3", "score_pool3", "upscore_16s (score_16s x2)")):
        arcs = {(e.source, e.target) for e in layout.skip_edges(skip)}
        assert arcs == {(source, skip), (skip, pair)}
        assert layout.nodes[skip].row == layout.nodes[pair].row


def test_deconvnet_pooling_indices_cross_from_each_encoder_level_to_its_unpooling():
    specs = specs_of("deconvnet")
    layout = layout_taps(specs)
    for level in range(1, 6):
        unpool = f"unpool{level} (at pool{level} maxima)"
        arcs = {(e.source, e.target) for e in layout.skip_edges(unpool)}
        assert arcs == {(f"enc{level}", unpool), (unpool, f"dec{level}")}
        # the unpooling is on the decoder's way: the coarser decoder flows into it
        assert any(e.target == unpool and e.kind == "flow" for e in layout.edges)


def test_a_skip_with_no_free_cell_gets_a_column_of_its_own():
    specs = [TapSpec("a", "encoder", "a", "", level=0), TapSpec("b", "decoder", "b", "", level=0),
             TapSpec("s", "skip", "s", "", level=0, pairs_with="b")]
    layout = layout_taps(specs)
    assert layout.nodes["a"].column < layout.nodes["s"].column < layout.nodes["b"].column
