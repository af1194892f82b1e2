#!/usr/bin/python3
"""Checks that GStreamer decodes a first video frame from a file, within a time limit: the demos
run it before their pipeline. On a damaged video decodebin (and decodebin3) sometimes drops the
demuxer's error, and a pipeline then waits forever (about 1 in 15 runs of gst-launch-1.0 on a
truncated AVI); gst-launch-1.0 with fakesink num-buffers=1 itself hangs now and then on good
files (EOS racing the preroll), so the probe only prerolls (PAUSED), with no EOS involved.

    pipelines/probe_media.py [--] FILE

Exits 0 when a frame prerolled, 1 with a message naming the file otherwise (the demos prefix it
with their own name), 2 on a bad command line (an option other than -h/--help is one; a FILE
starting with '-' goes after '--'). A probe that saw neither a frame nor an error within 5 s is
tried again (3 attempts): a readable video prerolls in well under a second.
"""
import sys

ATTEMPTS = 3
ATTEMPT_TIMEOUT_S = 5


def probe(path):
    """None when a first frame of `path` prerolls, else why not."""
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    for _ in range(ATTEMPTS):
        pipeline = Gst.Pipeline.new("probe")
        source = Gst.ElementFactory.make("filesrc")
        source.set_property("location", str(path))
        decode = Gst.ElementFactory.make("decodebin")
        convert = Gst.ElementFactory.make("videoconvert")
        sink = Gst.ElementFactory.make("fakesink")
        for element in (source, decode, convert, sink):
            pipeline.add(element)
        source.link(decode)
        convert.link(sink)
        sink_pad = convert.get_static_pad("sink")
        other_streams = []

        def link_video(_decode, pad):
            caps = pad.get_current_caps() or pad.query_caps(None)
            media = caps.get_structure(0).get_name() if caps.get_size() else "unknown"
            if media.startswith("video/") and not sink_pad.is_linked():
                pad.link(sink_pad)
            else:
                other_streams.append(media)

        decode.connect("pad-added", link_video)
        try:
            pipeline.set_state(Gst.State.PAUSED)
            message = pipeline.get_bus().timed_pop_filtered(
                ATTEMPT_TIMEOUT_S * Gst.SECOND, Gst.MessageType.ASYNC_DONE | Gst.MessageType.ERROR)
        finally:
            pipeline.set_state(Gst.State.NULL)
        if message is None:
            continue
        if message.type == Gst.MessageType.ASYNC_DONE:
            return None
        error, _ = message.parse_error()
        if not sink_pad.is_linked() and other_streams:
            return f"no video stream (only {', '.join(other_streams)})"
        return error.message
    return f"no frame and no error within {ATTEMPTS} x {ATTEMPT_TIMEOUT_S} s"


def main(argv):
    args = argv[1:]
    if args in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    # An option is a usage error, as in the other scripts ('--bogus' was probed as a file);
    # after '--' a FILE may start with '-'.
    if args[:1] == ["--"]:
        args = args[1:]
    elif args and args[0].startswith("-") and args[0] != "-":
        print(f"probe_media.py: unknown option '{args[0]}' (see --help)", file=sys.stderr)
        return 2
    if len(args) != 1:
        print(f"probe_media.py: usage: {argv[0]} [--] FILE, got {argv[1:]}", file=sys.stderr)
        return 2
    why = probe(args[0])
    if why is not None:
        sys.exit(f"no frame could be decoded from {args[0]}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
