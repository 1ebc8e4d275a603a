"""The training child's event stream: lines split anywhere become typed events, anything else is set aside."""
from __future__ import annotations

from segstudio.engine.training import events
from segstudio.gui.training.process import JsonLinesParser

# --- the event stream --------------------------------------------------------------------------
STREAM = (b'{"event": "start", "steps": 3}\n'
          b'Warning: something a library printed\n'
          b'{"event": "step", "step": 1, "steps": 3, "loss": 0.5, "eta_s": 4.0}\r\n'
          b'[1, 2, 3]\n'
          b'{"no_event": true}\n'
          b'\n'
          b'{"event": "step", "step": 3, "steps": 3, "loss": 0.25, "eta_s": 0.0, "note": "unknown keys pass"}\n'
          b'{"event": "oom", "action": "caf\xc3\xa9", "batch": 2}\n'
          b'{"event": "step", "step": "three"}\n'
          b'{"event": "launch", "step": 1}\n'
          b'{"event": "done", "version": "blobs/v2", "promoted": true}')


def test_parser_reassembles_lines_split_anywhere_and_sets_garbage_aside():
    expected = [events.Started(steps=3), events.StepProgress(step=1, steps=3, loss=0.5, eta_s=4.0),
                events.StepProgress(step=3, steps=3, loss=0.25, eta_s=0.0),
                events.OutOfMemory(action="café", batch=2), events.Finished(version="blobs/v2", promoted=True)]
    set_aside = ["Warning: something a library printed", "[1, 2, 3]", '{"no_event": true}',
                 '{"event": "step", "step": "three"}', '{"event": "launch", "step": 1}']
    for cut in range(len(STREAM) + 1):
        parser = JsonLinesParser()
        received = parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) + parser.finish()
        assert received == expected, cut
        assert list(parser.ignored) == set_aside
    parser = JsonLinesParser()
    one_byte_at_a_time = [e for i in range(len(STREAM)) for e in parser.feed(STREAM[i:i + 1])] + parser.finish()
    assert [e.kind for e in one_byte_at_a_time] == ["start", "step", "step", "oom", "done"]


def test_parser_bounds_a_runaway_line():
    parser = JsonLinesParser()
    assert parser.feed(b"x" * (JsonLinesParser.MAX_LINE + 10)) == []
    assert parser.feed(b'yz\n{"event": "step", "step": 1}\n') == [events.StepProgress(step=1)]
    assert len(parser.ignored) == 2  # the runaway head and the tail of its line
