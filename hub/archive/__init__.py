"""Session export / import as one zip archive.

- :mod:`hub.archive.format`: member names, limits, the manifest; the layout is described there;
- :mod:`hub.archive.export`: a session as archive bytes;
- :mod:`hub.archive.parse`: import, first step: open and validate, writes nothing;
- :mod:`hub.archive.remap`: import: fresh ids for a copy;
- :mod:`hub.archive.restore`: import, second step: objects, records and events into the hub.

The rest of the format (its name and version, limits, models) is in
:mod:`hub.archive.format`. Deleting artifacts is :mod:`hub.artifact_deletion`;
its public functions are re-exported here for compatibility.
"""

from hub.archive.export import export_session, session_events
from hub.archive.format import ARTIFACTS, EVENTS, MANIFEST, Manifest
from hub.archive.parse import parse_archive
from hub.archive.restore import import_session
from hub.artifact_deletion import delete_artifact, delete_records, take_references

__all__ = [
    "ARTIFACTS",
    "EVENTS",
    "MANIFEST",
    "Manifest",
    "delete_artifact",
    "delete_records",
    "export_session",
    "import_session",
    "parse_archive",
    "session_events",
    "take_references",
]
