"""Continuous verification: detectors over the audit log, read by sequence number.

:mod:`.seen`       one audit event as a detector sees it, and a detection
:mod:`.detector`   the protocol every detector implements, and its sliding windows
:mod:`.replay`, :mod:`.scope_probing`, :mod:`.delegation_fanout`: the detectors
:mod:`.detectors`  the detectors ``[detection]`` turns on
:mod:`.runner`     reads the log from each detector's stored cursor, off the decision
                   path, and commits the cursors with the detections they found

See docs/detection.md.
"""
