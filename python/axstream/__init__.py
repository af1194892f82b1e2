"""axstream's own Python modules (the Axelera runtime API itself is ``axelera.runtime``).

``axstream.meta``: read the results axstream's GStreamer elements put on a Gst.Buffer.
"""
