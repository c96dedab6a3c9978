"""duet."""
